"""Sequences in memory: the Dataset type, padding and value checks.

No TensorFlow here: ``bilstm generate`` must start fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError

PER_STEP = "per-step"
SEQUENCE = "sequence"


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
