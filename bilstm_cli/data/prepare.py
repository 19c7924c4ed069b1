"""Turn the data config into what training needs: a batch source, a validation set, the model spec.

Shared by ``train`` and ``compare``. Two protocols:

- online (no ``data.train_path``): fresh cumulative-sum sequences every epoch and a fixed
  validation set of ``data.validation_size`` sequences drawn with ``data.validation_seed``;
- dataset (``data.train_path``): epochs over the file, validation from ``data.val_path`` or a
  stratified ``data.validation_split``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from ..config.schema import DataConfig
from ..errors import ConfigError, DataError
from ..limits import GIB, MAX_BATCH_BYTES
from .batches import Batches, DatasetSource, OnlineSource, balanced_class_weights, balanced_weights, make_batches
from .dataset import PER_STEP, Dataset
from .folds import FoldSource, fold_validation, member_layout, stratified_folds
from .generator import SPLIT_STREAM, STANDARDIZE_STREAM, VALIDATION_STREAM, cumulative_sum_task, stream_rng
from .labels import align_labels
from .spec import ModelSpec
from .streamed import StreamedBatches, StreamedFile, StreamSource, open_large_file, split_chunks

ClassWeight = Union[None, str, dict[str, float]]  # train.class_weight: None, "balanced" or {label: weight}
EVALUATION_BATCH = 1024
# Bytes held per sequence step (inputs, labels, masks and weights as stacked batches).
BYTES_PER_STEP = 20


@dataclass
class TrainingData:
    config: DataConfig
    spec: ModelSpec
    classes: list[str] | None
    train_dataset: Dataset | None  # None for the online protocol and streamed files
    validation: Dataset | StreamedBatches | None
    standardization: tuple[np.ndarray, np.ndarray] | None
    class_weights: np.ndarray | None
    timesteps: int
    test: Dataset | StreamedBatches | None = None  # final scores are reported on it when given
    train_stream: StreamedFile | None = None  # a training file larger than data.memory_limit
    train_chunks: list[int] | None = None  # its chunks that train (the others may validate)
    folds: list[np.ndarray] | None = None  # train.folds: each member's validation fold (data/folds.py)

    @property
    def members(self) -> int:
        """Models per run: the folds of a k-fold ensemble, else 1."""
        return len(self.folds) if self.folds else 1

    def member_source(self, batch_size: int, seed: int, fold: int) -> FoldSource:
        """The training batches of an ensemble's member ``fold`` (all sequences outside it)."""
        batch, steps = member_layout(self.train_dataset, self.folds, batch_size)
        kept = np.setdiff1d(np.arange(self.train_dataset.size), self.folds[fold])
        return FoldSource(self.train_dataset.subset(kept), batch, steps, seed, self.class_weights)

    def fold_validation_batches(self) -> Batches:
        """Every fold, side by side: each member's validation (see :func:`fold_validation`)."""
        return fold_validation(self.train_dataset, self.folds, EVALUATION_BATCH)

    def source(self, batch_size: int, seed: int) -> OnlineSource | DatasetSource | StreamSource:
        """The training batches of one run; the seed picks the sequences / the shuffles."""
        if self.train_stream is not None:
            return StreamSource(self.train_stream, self.train_chunks, batch_size, seed, self.class_weights)
        if self.train_dataset is None:
            return OnlineSource(self.config, batch_size, seed, self.class_weights)
        return DatasetSource(self.train_dataset, batch_size, seed, self.class_weights)

    @property
    def train_size(self) -> int:
        """Training sequences (of the file; per epoch for the generated task)."""
        if self.train_stream is not None:
            return sum(self.train_stream.sizes[i] for i in self.train_chunks)
        return self.train_dataset.size if self.train_dataset is not None else self.config.samples_per_epoch

    @property
    def variable_length(self) -> bool:
        """Whether any training, validation or test sequence is shorter than the others (the
        training graph then needs the length mask)."""
        datasets = (self.train_dataset, self.train_stream, self.validation, self.test)
        return any(d is not None and d.variable_length for d in datasets)

    def validation_batches(self) -> Batches | None:
        return _evaluation_batches(self.validation)

    def test_batches(self) -> Batches | None:
        return _evaluation_batches(self.test)

    def describe(self) -> dict:
        """What a saved model expects (written to data.json)."""
        return {
            "task": self.spec.task,
            "features": self.spec.features,
            "num_classes": self.spec.num_classes,
            "classes": self.classes,
            "timesteps": self.timesteps,
            "standardized": self.standardization is not None,
        }


def _evaluation_batches(dataset: Dataset | StreamedBatches | None) -> Batches | StreamedBatches | None:
    if dataset is None or dataset.size == 0:
        return None
    if isinstance(dataset, StreamedBatches):
        return dataset
    return make_batches(dataset, min(EVALUATION_BATCH, dataset.size))


@dataclass
class DataFiles:
    """The dataset files of a data section, read once (``compare`` ships them to its workers).

    A file larger than ``data.memory_limit`` is a :class:`StreamedFile`: what one pass over it
    found, and its path (workers read its chunks from there)."""

    train: Dataset | StreamedFile
    validation: Dataset | StreamedFile | None = None
    test: Dataset | StreamedFile | None = None

    def check_readable(self) -> None:
        """Refuse clearly where this process cannot read a streamed file (a Ray worker on a
        node without the driver's filesystem)."""
        for file in (self.train, self.validation, self.test):
            if isinstance(file, StreamedFile):
                file.check_readable()


def read_data_file(path: str, task: str | None, memory_limit: int) -> Dataset | StreamedFile:
    """A data file read whole, or scanned for streaming when reading it whole would take more
    than ``memory_limit`` bytes."""
    from .io import read_dataset

    streamed = open_large_file(path, None, memory_limit, task)
    return streamed if streamed is not None else read_dataset(path, task=task)


def read_files(data: DataConfig) -> DataFiles | None:
    """Read the files a data section names (None for the generated task); errors name the file."""
    if data.train_path is None:
        return None
    budget = data.memory_budget
    train = read_data_file(data.train_path, data.file_task, budget)
    validation = test = None
    for path, role in ((data.val_path, "validation"), (data.test_path, "test")):
        if path is None:
            continue
        dataset = read_data_file(path, train.task, budget)  # the same kind of labels as the training file
        if dataset.features != train.features:
            raise DataError(f"{path}: {dataset.features} features per step, but {data.train_path} has {train.features}")
        if role == "validation":
            validation = dataset
        else:
            test = dataset
    return DataFiles(train, validation, test)


def prepare_training_data(
    data: DataConfig, seed: int, class_weight: ClassWeight = None, files: DataFiles | None = None, folds: int = 0
) -> TrainingData:
    """Load or generate the data named by ``data`` and validate it, before any run starts.

    Args:
        data: the config's data section.
        seed: the run's seed (picks the standardisation sample and the validation split).
        class_weight: ``train.class_weight``.
        files: the section's files when they were read already (see :func:`read_files`).
        folds: ``train.folds``: k >= 2 splits the training file into k stratified folds (a
            k-fold ensemble's validation) instead of a validation split; a file streamed in
            chunks (larger than ``data.memory_limit``) trains one model on the split instead.
    """
    if folds and (data.train_path is None or data.val_path is not None):
        raise ConfigError(
            f"train.folds={folds} splits a training file into validation folds, "
            + ("so it needs data.train_path" if data.train_path is None else "so it cannot take a validation file"),
            "set train.folds=0" + ("" if data.train_path is None else ", or remove --val-data / data.val_path"),
        )
    if data.train_path is None:
        for name, count in (("samples_per_epoch", data.samples_per_epoch), ("validation_size", data.validation_size)):
            needed = count * data.timesteps * BYTES_PER_STEP
            if needed > MAX_BATCH_BYTES:
                raise ConfigError(
                    f"data.{name}={count} x data.timesteps={data.timesteps} needs about "
                    f"{needed / GIB:.0f} GiB of memory; refusing",
                    "use fewer or shorter sequences",
                )
        if data.val_path is not None or data.test_path is not None or data.validation_split > 0:
            raise ConfigError(
                "data.val_path / data.test_path / data.validation_split need data.train_path",
                "generated data is validated on data.validation_size fresh sequences",
            )
        validation = None
        if data.validation_size > 0:
            rng = stream_rng(data.validation_seed, VALIDATION_STREAM)
            validation = cumulative_sum_task(
                data.validation_size, data.timesteps, data.threshold, rng, data.generated_task
            )
        spec = ModelSpec(features=1, num_classes=2, task=data.generated_task)
        standardization = weights = None
        if data.standardize or class_weight is not None:  # fitted on a sample of the stream
            rng = stream_rng(seed, STANDARDIZE_STREAM)
            sample = cumulative_sum_task(1000, data.timesteps, data.threshold, rng, data.generated_task)
            standardization = _standardization(data.standardize, sample)
            weights = _class_weights(class_weight, sample, 2, None)
        return TrainingData(data, spec, None, None, validation, standardization, weights, data.timesteps)

    files = files if files is not None else read_files(data)
    if isinstance(files.train, StreamedFile):  # folds need the file in memory: one model, the split
        return _streamed_training_data(data, seed, class_weight, files)
    train, validation, test = files.train, files.validation, files.test
    present = np.unique(train.valid_labels())
    if len(present) < 2:
        name = train.classes[present[0]] if train.classes else str(present[0])
        raise DataError(
            f"{data.train_path}: every label is {name!r}; a classifier needs at least two classes to learn",
            "check the label column, or add examples of the other classes",
        )
    fold_sets = None
    if folds:  # no more folds than sequences (a 4-series file: 4 folds of one)
        fold_sets = stratified_folds(train, min(folds, train.size), seed, data.train_path)
    elif validation is None and data.validation_split > 0:
        train, validation = stratified_split(train, data.validation_split, seed)
    num_classes = train.num_classes
    validation = _aligned(validation, train.classes, num_classes, train.timesteps, data.val_path or data.train_path)
    test = _aligned(test, train.classes, num_classes, train.timesteps, data.test_path)
    spec = ModelSpec(features=train.features, num_classes=num_classes, task=train.task)
    weights = _class_weights(class_weight, train, num_classes, train.classes)
    standardization = _standardization(data.standardize, train)
    return TrainingData(
        data, spec, train.classes, train, validation, standardization, weights, train.timesteps, test, folds=fold_sets
    )


def _streamed_training_data(data: DataConfig, seed: int, class_weight: ClassWeight, files: DataFiles) -> TrainingData:
    """Training data from a file streamed in chunks: what the pass over it found stands in for
    the arrays (classes, label counts, standardisation statistics of the training chunks)."""
    train = files.train
    chunks = list(range(len(train.chunks)))
    validation = files.validation
    if validation is None and data.validation_split > 0:
        chunks, held_out = split_chunks(train, data.validation_split, seed, "data.validation_split")
        validation = StreamedBatches(train, held_out)
    counts = train.counts_of(chunks)
    if counts is None or np.count_nonzero(counts) < 2:
        raise DataError(
            f"{data.train_path}: the training sequences hold only one class; a classifier needs at least two",
            "check the label column, or add examples of the other classes",
        )
    num_classes, timesteps = train.num_classes, train.timesteps
    validation, test = (
        _aligned(dataset, train.classes, num_classes, timesteps, path)
        for dataset, path in ((validation, data.val_path), (files.test, data.test_path))
    )
    spec = ModelSpec(features=train.features, num_classes=num_classes, task=train.task)
    weights = None
    if class_weight == "balanced":
        weights = balanced_weights(counts)
    elif class_weight is not None:
        weights = _class_weights(class_weight, None, num_classes, train.classes)
    standardization = train.standardization_of(chunks) if data.standardize else None
    return TrainingData(
        data, spec, train.classes, None, validation, standardization, weights, timesteps, test, train, chunks
    )


def _aligned(dataset, classes: list[str] | None, num_classes: int, timesteps: int, path: str | None):
    """A validation or test set (read whole, or streamed) in the training data's label codes."""
    if dataset is None or isinstance(dataset, StreamedBatches):
        return dataset
    if isinstance(dataset, StreamedFile):
        return StreamedBatches(dataset.align_to(classes, num_classes, timesteps, path))
    return align_labels(dataset, classes, num_classes, path)


def stratified_split(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Hold out ``fraction`` of the sequences, keeping each class's share.

    Sequences are stratified by their label (sequence task) or by the largest label among
    their steps (per-step task: a sequence containing a rare event counts as that event).
    """
    if dataset.task == PER_STEP:
        strata = np.where(dataset.step_mask(), dataset.y, -1).max(axis=1)
    else:
        strata = dataset.y
    rng = stream_rng(seed, SPLIT_STREAM)
    held_out = []
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        held_out.extend(members[: int(round(fraction * len(members)))])
    if not held_out:  # every class too small to give one: one each from the largest classes
        held_out = _one_per_class(strata, max(1, int(round(fraction * dataset.size))), rng)
    held_out = np.sort(np.array(held_out, dtype=np.int64))
    kept = np.setdiff1d(np.arange(dataset.size), held_out)
    if len(held_out) == 0 or len(kept) == 0:
        raise DataError(
            f"validation_split={fraction} of {dataset.size} sequences leaves an empty "
            f"{'validation' if len(held_out) == 0 else 'training'} set",
            "use more data, --val-data FILE, or no split: --set data.validation_split=0 "
            "(and --set train.early_stopping.enabled=false, which needs validation data)",
        )
    return dataset.subset(kept), dataset.subset(held_out)


def _one_per_class(strata: np.ndarray, wanted: int, rng: np.random.Generator) -> list[int]:
    """``wanted`` sequences, one from each of the largest classes (those with two or more)."""
    values, counts = np.unique(strata, return_counts=True)
    order = sorted(range(len(values)), key=lambda k: (-counts[k], k))
    chosen = []
    for k in order[:wanted]:
        if counts[k] >= 2:
            chosen.append(int(rng.choice(np.flatnonzero(strata == values[k]))))
    return chosen


def _standardization(enabled: bool, dataset: Dataset) -> tuple[np.ndarray, np.ndarray] | None:
    if not enabled:
        return None
    steps = dataset.x[dataset.step_mask()]  # real steps only: padding must not shift the mean
    variance = steps.var(axis=0)
    return steps.mean(axis=0).astype(np.float32), np.where(variance > 0, variance, 1.0).astype(np.float32)


def _class_weights(
    setting: ClassWeight, dataset: Dataset, num_classes: int, classes: list[str] | None
) -> np.ndarray | None:
    if setting is None:
        return None
    if setting == "balanced":
        return balanced_class_weights(dataset, num_classes)
    names = classes if classes is not None else [str(k) for k in range(num_classes)]
    weights = np.ones(num_classes, dtype=np.float32)
    for label, weight in setting.items():
        if str(label) not in names:
            raise ConfigError(
                f"train.class_weight names class {label!r}, which is not in the data ({', '.join(names)})"
            )
        if weight <= 0:
            raise ConfigError(f"train.class_weight[{label}]={weight} must be > 0")
        weights[names.index(str(label))] = weight
    return weights
