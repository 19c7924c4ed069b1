"""Sequences in memory: the Dataset type, the tutorial's task generator, labels and padding.

No TensorFlow here: ``bilstm generate`` must start fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import DataError

PER_STEP = "per-step"
SEQUENCE = "sequence"

# Independent random streams derived from one seed (numpy SeedSequence entropy lists).
TRAIN_STREAM = 1
VALIDATION_STREAM = 2
SHUFFLE_STREAM = 3
SPLIT_STREAM = 4
MAX_LABEL = 65_535  # a larger class number is a typo or an ID column, not a class


@dataclass
class Dataset:
    """Zero-padded sequences with their true lengths and integer labels.

    Args:
        x: float32 array ``(N, T, F)``; steps at or after ``lengths[i]`` are padding (zeros).
        y: int64 labels, ``(N, T)`` for per-step labels or ``(N,)`` for one label per sequence;
            ``None`` for unlabelled input (``predict``).
        lengths: int64 ``(N,)``, each in ``1..T``.
        classes: the original label names when labels were given as text; label ``k`` means
            ``classes[k]``. ``None`` for integer labels.
        ids: the sequences' own ids (CSV ``sequence`` column), printed by ``predict``.
    """

    x: np.ndarray
    y: np.ndarray | None
    lengths: np.ndarray
    classes: list[str] | None = field(default=None)
    ids: list | None = field(default=None)  # sequence ids from the file, where it has them

    @property
    def size(self) -> int:
        return int(self.x.shape[0])

    @property
    def timesteps(self) -> int:
        return int(self.x.shape[1])

    @property
    def features(self) -> int:
        return int(self.x.shape[2])

    @property
    def task(self) -> str:
        return SEQUENCE if self.y is not None and self.y.ndim == 1 else PER_STEP

    @property
    def variable_length(self) -> bool:
        return bool(np.any(self.lengths != self.timesteps))

    @property
    def num_classes(self) -> int:
        """Number of label values (at least 2: a binary task may show only one class)."""
        if self.classes is not None:
            return max(2, len(self.classes))
        if self.y is None or self.y.size == 0:
            return 2
        return max(2, int(self.valid_labels().max()) + 1)

    def step_mask(self) -> np.ndarray:
        """Boolean ``(N, T)``: True on real steps, False on padding."""
        return np.arange(self.timesteps)[None, :] < self.lengths[:, None]

    def valid_labels(self) -> np.ndarray:
        """Labels of real steps only (flattened), or the per-sequence labels."""
        if self.y is None:
            raise DataError("this dataset has no labels")
        return self.y if self.y.ndim == 1 else self.y[self.step_mask()]

    def subset(self, index: np.ndarray) -> Dataset:
        y = None if self.y is None else self.y[index]
        ids = None if self.ids is None else [self.ids[i] for i in index]
        return Dataset(self.x[index], y, self.lengths[index], self.classes, ids)


# ---------------------------------------------------------------------------- the task


def cumulative_sum_task(
    samples: int,
    timesteps: int,
    threshold: float = 0.25,
    rng: np.random.Generator | None = None,
    task: str = PER_STEP,
) -> Dataset:
    """The tutorial's task: uniform [0, 1) steps, label 1 once the running sum reaches the limit.

    The limit is ``threshold * timesteps`` (tutorial: ``T / 4``) and the test is
    ``0 if cumsum < limit else 1``, so a sum exactly equal to the limit is labelled 1.
    With ``task="sequence"`` the one label per sequence is the final step's label.

    Example:
        >>> d = cumulative_sum_task(2, 10, rng=np.random.default_rng(0))
        >>> d.x.shape, d.y.shape
        ((2, 10, 1), (2, 10))
    """
    rng = rng if rng is not None else np.random.default_rng()
    x = rng.random((samples, timesteps), dtype=np.float32)
    limit = timesteps * threshold
    # float64 running sum of the stored float32 values: labels agree with the saved data
    labels = (np.cumsum(x, axis=1, dtype=np.float64) >= limit).astype(np.int64)
    y = labels[:, -1].copy() if task == SEQUENCE else labels
    lengths = np.full(samples, timesteps, dtype=np.int64)
    return Dataset(x[:, :, None], y, lengths)


def stream_rng(seed: int, stream: int, *index: int) -> np.random.Generator:
    """A generator for one named stream (and e.g. one epoch) of a seeded run.

    Deriving each epoch's data from ``(seed, stream, epoch)`` makes every epoch reproducible
    on its own, which is what lets an interrupted run resume bit-identically and lets
    ``compare`` give every variant the same sequences.
    """
    return np.random.default_rng([seed, stream, *index])


# ---------------------------------------------------------------------------- labels


def encode_labels(values: Sequence[object], where: str) -> tuple[np.ndarray, list[str] | None]:
    """Turn raw labels into int64 codes.

    Integers (or integer-valued numbers) >= 0 are used as they are. Text labels are mapped
    to ``0..C-1`` in sorted order and the names are returned. Anything else is an error.
    """
    array = np.asarray(values, dtype=object)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64), None
    numeric = np.array([_is_number(v) for v in array.ravel()])
    if numeric.all():
        as_float = np.array([float(v) for v in array.ravel()], dtype=np.float64)
        bad = ~valid_class_numbers(as_float)
        if bad.any():
            first = array.ravel()[int(np.argmax(bad))]
            raise DataError(
                f"{where}: label {first!r} is not a class number (an integer from 0 to {MAX_LABEL})",
                "labels must be class numbers 0, 1, 2, ... or class names",
            )
        return as_float.astype(np.int64).reshape(array.shape), None
    if numeric.any():
        first_number = array.ravel()[int(np.argmax(numeric))]
        first_text = array.ravel()[int(np.argmax(~numeric))]
        raise DataError(
            f"{where}: labels mix numbers ({first_number!r}) and text ({first_text!r})",
            "use class numbers everywhere or class names everywhere",
        )
    names = sorted({str(v) for v in array.ravel()})
    lookup = {name: code for code, name in enumerate(names)}
    codes = np.array([lookup[str(v)] for v in array.ravel()], dtype=np.int64)
    return codes.reshape(array.shape), names


def valid_class_numbers(values: np.ndarray) -> np.ndarray:
    """True where a numeric label is an integer in 0..MAX_LABEL."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values >= 0) & (values <= MAX_LABEL) & (values == np.round(values))


def _is_number(value: object) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, float, np.integer, np.floating)):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def align_labels(dataset: Dataset, classes: list[str] | None, num_classes: int, where: str) -> Dataset:
    """Express a dataset's labels in a trained model's label codes.

    Raises DataError for a label the model never saw in training.
    """
    if dataset.y is None or dataset.y.size == 0:
        return dataset
    used_codes = np.unique(dataset.valid_labels())
    if classes is None:  # the model was trained on class numbers
        if dataset.classes is not None:
            raise DataError(
                f"{where}: labels are names ({', '.join(dataset.classes[:5])}) but the model was "
                "trained on class numbers",
                "give the labels as numbers, as in the training data",
            )
        if used_codes.max() >= num_classes:
            raise DataError(
                f"{where}: label {int(used_codes.max())} was never seen in training "
                f"(the model knows classes 0..{num_classes - 1})"
            )
        return dataset
    # the model was trained on class names; numbers in the file are compared as text
    file_names = dataset.classes or [str(code) for code in range(int(used_codes.max()) + 1)]
    lookup = {name: code for code, name in enumerate(classes)}
    for code in used_codes:
        if file_names[code] not in lookup:
            raise DataError(
                f"{where}: label {file_names[code]!r} was never seen in training (known: {', '.join(classes[:10])})"
            )
    remap = np.array([lookup.get(name, 0) for name in file_names], dtype=np.int64)
    return Dataset(dataset.x, remap[dataset.y], dataset.lengths, list(classes))


# ---------------------------------------------------------------------------- padding


def pad_sequences(sequences: list[np.ndarray], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``(L_i, F)`` arrays into a zero-padded ``(N, max L, F)`` array and the lengths."""
    if not sequences:
        raise DataError(f"{where}: no sequences found", "the input is empty")
    features = {s.shape[1] for s in sequences}
    if len(features) > 1:
        counts = [s.shape[1] for s in sequences]
        first_odd = next(i for i, c in enumerate(counts) if c != counts[0])
        raise DataError(
            f"{where}: sequence {first_odd} has {counts[first_odd]} features, sequence 0 has {counts[0]}",
            "every step of every sequence needs the same number of features",
        )
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    if (lengths == 0).any():
        raise DataError(f"{where}: sequence {int(np.argmin(lengths))} has no steps")
    x = np.zeros((len(sequences), int(lengths.max()), features.pop()), dtype=np.float32)
    for i, sequence in enumerate(sequences):
        x[i, : len(sequence)] = sequence
    return x, lengths


def pad_labels(labels: list[np.ndarray], timesteps: int) -> np.ndarray:
    y = np.zeros((len(labels), timesteps), dtype=np.int64)
    for i, label in enumerate(labels):
        y[i, : len(label)] = label
    return y


def check_values(dataset: Dataset, where: str) -> None:
    """Refuse NaN/inf inputs and inconsistent shapes, naming the first bad sequence and step."""
    x = dataset.x
    if x.ndim != 3:
        raise DataError(f"{where}: X must be (sequences, steps, features), got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        raise DataError(f"{where}: the input is empty (X has shape {x.shape})")
    bad = ~np.isfinite(x)
    if bad.any():
        seq, step, feature = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{where}: sequence {seq}, step {step}, feature {feature} is {x[seq, step, feature]}",
            "remove or impute missing values before training",
        )
    if dataset.lengths.shape != (x.shape[0],):
        raise DataError(f"{where}: lengths has shape {dataset.lengths.shape}, expected ({x.shape[0]},)")
    if (dataset.lengths < 1).any() or (dataset.lengths > x.shape[1]).any():
        i = int(np.argmax((dataset.lengths < 1) | (dataset.lengths > x.shape[1])))
        length = int(dataset.lengths[i])
        problem = "an all-padding sequence (length 0)" if length < 1 else f"longer than the {x.shape[1]} steps stored"
        raise DataError(f"{where}: sequence {i} has length {length}: {problem}")
    if dataset.y is not None:
        expected = (x.shape[0],) if dataset.y.ndim == 1 else x.shape[:2]
        if dataset.y.shape != expected:
            raise DataError(
                f"{where}: y has shape {dataset.y.shape} but X has {x.shape[0]} sequences of "
                f"{x.shape[1]} steps (expected y shape {expected})"
            )
