"""Datasets larger than the memory budget: one streaming pass to learn what a file holds, then
training, evaluation and prediction a chunk at a time (see :mod:`bilstm_cli.data.chunked`).

The pass (:func:`scan`) reads every chunk once, validates it as a whole-file read would, and
keeps only what later passes need: the chunks' places and sizes, the label kind and classes,
the longest sequence, label counts and the standardisation statistics (merged per chunk in
float64, Chan et al.'s parallel variance).

Training shuffles in two levels (:class:`StreamSource`): epoch ``e`` orders the chunks with the
stream ``(seed, SHUFFLE, e)``, groups them in windows of :data:`WINDOW_CHUNKS` consecutive
chunks, and shuffles the sequences of each window with ``(seed, SHUFFLE, e, window)``. Any step
of any epoch is therefore a pure function of the seed: a run resumed mid-epoch reads exactly
the batches an uninterrupted one would. At most one window is held in memory (plus the batches
being made), whatever the file's size.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from .batches import Batches, make_batches
from .chunked import HELD_PER_DECODED_BYTE, STREAMABLE_FORMATS, Chunk, open_reader
from .dataset import PER_STEP, SEQUENCE, Dataset, check_values
from .generator import SHUFFLE_STREAM, SPLIT_STREAM, stream_rng
from .labels import align_labels

WINDOW_CHUNKS = 4  # chunks shuffled together; a window's decoded arrays stay within the budget
# A text chunk takes this share of the budget: a CSV's parse holds ~8x its bytes (IN_MEMORY_FACTOR),
# and the window, the batches in flight and the parse of the next chunk share the budget.
TEXT_CHUNK_SHARE = 1 / 64
ARRAY_CHUNK_SHARE = 1 / 16  # NPZ: decoded bytes of a chunk
# ... and at most this much: a window of large chunks is read (parsed) while training waits
# for it (a 229 MB CSV with the 3 GB default limit: 49 MB chunks made its epoch 12 s slower)
# (Parquet: of the rows once read; a row group's slices re-read the group, so larger)
CHUNK_MAX_BYTES = {"text": 8 * 2**20, "arrays": 32 * 2**20, "parquet": 128 * 2**20}
EVALUATION_STEPS = 16  # batches per evaluation call on streamed data (one compiled shape)

# Peak bytes a whole-file read holds per byte of the file (CSV, JSONL), or per decoded byte
# (Parquet: pyarrow's table, the Python lists, the arrays; NPZ). Measured: a 229 MB CSV of 1M
# sequences read with a 1.84 GB peak; a Parquet file of 10M (448 MB decoded) with 7.5 GB. JSONL
# (Python's json per line) is assumed no better than CSV was before its reader got faster.
IN_MEMORY_FACTOR = {"csv": 8.0, "jsonl": 14.0, "parquet": HELD_PER_DECODED_BYTE, "parquet-long": HELD_PER_DECODED_BYTE}
IN_MEMORY_FACTOR["npz"] = 2.0


def in_memory_bytes(path: str, fmt: str) -> int:
    """About how much memory reading ``path`` whole would take (0 for stdin and unknown formats)."""
    if path == "-" or fmt not in IN_MEMORY_FACTOR:
        return 0
    size = os.path.getsize(path)
    if fmt in ("parquet", "parquet-long"):
        try:
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path).metadata
            size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        except Exception:  # noqa: BLE001 - not readable: the whole-file reader says why
            return 0
    return int(size * IN_MEMORY_FACTOR[fmt])


def should_stream(path: str, fmt: str, memory_limit: int) -> bool:
    return fmt in STREAMABLE_FORMATS and in_memory_bytes(path, fmt) > memory_limit


def open_large_file(
    path: str, fmt: str | None, memory_limit: int, task: str | None = None, require_labels: bool = True
) -> StreamedFile | None:
    """The streaming pass over ``path`` when reading it whole would take more than
    ``memory_limit`` bytes; None for a file that fits (and for stdin), to read whole."""
    from .formats import STDIN, format_from_name

    if path == STDIN or not os.path.isfile(path):
        return None
    fmt = format_from_name(path, fmt)
    if not should_stream(path, fmt, memory_limit):
        return None
    return scan(path, fmt, memory_limit, task, require_labels)


@dataclass
class StreamedFile:
    """What the streaming pass learnt about a file; reads its chunks as datasets.

    ``read(i)`` gives chunk ``i`` with labels in this file's class codes (or those of the
    training file given to :meth:`align_to`) and padded to ``timesteps`` steps.
    """

    path: str
    fmt: str
    reader: object
    chunks: list[Chunk]
    sizes: list[int]
    features: int
    timesteps: int
    variable_length: bool
    task: str | None  # None: unlabelled
    classes: list[str] | None
    num_classes: int
    chunk_counts: np.ndarray | None  # (chunks, classes): label counts of each chunk
    chunk_moments: list[tuple[int, np.ndarray, np.ndarray]]  # each chunk's steps: count, mean, M2
    file_size: int = 0  # bytes when scanned (a worker checks it reads the same file)
    _starts: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self._starts = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)

    @property
    def size(self) -> int:
        return int(sum(self.sizes))

    def counts_of(self, chunks: list[int]) -> np.ndarray | None:
        """Label counts of some chunks, by class code (None: unlabelled)."""
        return None if self.chunk_counts is None else self.chunk_counts[chunks].sum(axis=0)

    def standardization_of(self, chunks: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and variance of the real steps of some chunks (a variance of 0 is 1)."""
        moments = (0, None, None)
        for chunk in chunks:
            moments = merge_moments(moments, self.chunk_moments[chunk])
        count, mean, m2 = moments
        variance = m2 / max(count, 1)
        return mean.astype(np.float32), np.where(variance > 0, variance, 1.0).astype(np.float32)

    def check_readable(self) -> None:
        """Refuse clearly when this process cannot read the scanned file (a worker elsewhere)."""
        import socket

        try:
            size = os.path.getsize(self.path)
        except OSError as exc:
            size, reason = None, exc.strerror
        else:
            reason = f"it has {size} bytes, not the {self.file_size} the driver scanned"
        if size != self.file_size:
            raise DataError(
                f"worker on {socket.gethostname()} cannot read {self.path} ({reason})",
                "a streamed file is read by every worker from its path: put it on a filesystem every node "
                "shares, at the same path (or raise data.memory_limit to ship it whole)",
            )

    def first_sequence(self, index: int) -> int:
        return int(self._starts[index])

    def read(self, index: int) -> Dataset:
        dataset = self.reader.read(self.chunks[index], self.task)
        ids = dataset.ids
        if ids is None:  # the sequences' positions in the file
            start = self.first_sequence(index)
            ids = list(range(start, start + dataset.size))
        if dataset.y is not None and self.task is not None:
            dataset = align_labels(dataset, self.classes, self.num_classes, self.path)
        dataset.ids = ids
        return pad_steps(dataset, self.timesteps)

    def align_to(self, classes: list[str] | None, num_classes: int, timesteps: int, where: str) -> StreamedFile:
        """This file read with a training file's classes and number of steps (validation, test);
        a label training never saw is refused now, not when its chunk is first scored."""
        if self.chunk_counts is not None:
            seen = np.flatnonzero(self.chunk_counts.sum(axis=0))  # this file's class codes in use
            if classes is None and self.classes is not None:
                raise DataError(f"{where}: labels are names but the training labels are class numbers")
            if classes is None and len(seen) and seen.max() >= num_classes:
                raise DataError(f"{where}: label {int(seen.max())} was never seen in training")
            unknown = [self.classes[code] for code in seen if self.classes and self.classes[code] not in classes]
            if classes is not None and unknown:
                raise DataError(f"{where}: label {unknown[0]!r} was never seen in training")
        longest = max(self.timesteps, timesteps)
        return StreamedFile(
            self.path, self.fmt, self.reader, self.chunks, self.sizes, self.features, longest,
            self.variable_length or self.timesteps != longest, self.task, classes, num_classes,
            None, self.chunk_moments, self.file_size,
        )  # fmt: skip


def pad_steps(dataset: Dataset, timesteps: int) -> Dataset:
    missing = timesteps - dataset.timesteps
    if missing <= 0:
        return dataset
    x = np.pad(dataset.x, ((0, 0), (0, missing), (0, 0)))
    y = dataset.y
    if y is not None and y.ndim == 2:
        y = np.pad(y, ((0, 0), (0, missing)))
    return Dataset(x, y, dataset.lengths, dataset.classes, dataset.ids)


def scan(path: str, fmt: str, memory_limit: int, task: str | None = None, require_labels: bool = True) -> StreamedFile:
    """One pass over ``path``: chunk places, label kind and classes, lengths, statistics.

    ``task``: the label kind the caller needs (None: what the file holds, as a whole-file read
    would decide it: per step if any sequence's steps have different labels).
    """
    kind = "arrays" if fmt == "npz" else "parquet" if fmt.startswith("parquet") else "text"
    share = TEXT_CHUNK_SHARE if kind == "text" else ARRAY_CHUNK_SHARE
    chunk_bytes = min(memory_limit * share, CHUNK_MAX_BYTES[kind])
    # readers keep the absolute path: a worker process (Ray's included) may run elsewhere
    reader = open_reader(os.path.abspath(path), fmt, chunk_bytes)
    while True:
        found = _scan_chunks(path, reader, task)
        if task is None and found["tasks"] == {SEQUENCE, PER_STEP}:
            task = PER_STEP  # some chunks looked per-sequence on their own: read them all per step
            continue
        break
    if found["labelled"] and found["unlabelled"]:
        raise DataError(f"{path}: some sequences have labels and others do not", "label every sequence")
    labelled = found["labelled"] > 0
    if require_labels and not labelled:
        raise DataError(f"{path}: the input has no labels (y)", "add a y column/field with the labels")
    kinds = found["tasks"]
    if len(kinds) > 1:
        raise DataError(f"{path}: some sequences have one label each and others a label per step")
    file_task = (task or (kinds.pop() if kinds else None)) if labelled else None
    classes, num_classes, counts = _classes(found)
    return StreamedFile(
        os.path.abspath(path), fmt, reader, found["chunks"], found["sizes"], found["features"], found["timesteps"],
        found["variable_length"], file_task, classes, num_classes, counts, found["moments"], os.path.getsize(path),
    )  # fmt: skip


def _scan_chunks(path: str, reader, task: str | None) -> dict:
    found = {
        "chunks": [], "sizes": [], "features": None, "timesteps": 0, "shortest": 2**62,
        "tasks": set(), "labelled": 0, "unlabelled": 0, "names": None, "numbers": None, "counts": [],
        "moments": [],
    }  # fmt: skip
    for chunk in reader.chunks():
        dataset = reader.read(chunk, task)
        where = f"{path}, line {chunk.first_line}" if chunk.first_line else path
        check_values(dataset, where)
        if found["features"] is None:
            found["features"] = dataset.features
        elif dataset.features != found["features"]:
            raise DataError(
                f"{where}: {dataset.features} features per step, "
                f"but the file's first sequences have {found['features']}"
            )
        found["chunks"].append(chunk)
        found["sizes"].append(dataset.size)
        found["timesteps"] = max(found["timesteps"], int(dataset.lengths.max()))
        found["shortest"] = min(found["shortest"], int(dataset.lengths.min()))
        found["moments"].append(_moments(dataset))
        found["counts"].append({})
        if dataset.y is None:
            found["unlabelled"] += dataset.size
            continue
        found["labelled"] += dataset.size
        if task is not None and dataset.task != task:  # JSONL and NPZ chunks say what they hold
            from .io import task_mismatch

            raise DataError(f"{where}: {task_mismatch(dataset.task, task)}")
        found["tasks"].add(dataset.task)
        _count_labels(found, dataset, where)
    if not found["chunks"]:
        raise DataError(f"{path}: no sequences found", "the input is empty")
    found["variable_length"] = found["shortest"] < found["timesteps"]
    return found


def _count_labels(found: dict, dataset: Dataset, where: str) -> None:
    labels = dataset.valid_labels()
    codes, counts = np.unique(labels, return_counts=True)
    if dataset.classes is not None:
        if found["numbers"]:
            raise DataError(f"{where}: labels are names here but class numbers earlier in the file")
        found["names"] = True
        keys = [dataset.classes[int(code)] for code in codes]
    else:
        if found["names"]:
            raise DataError(f"{where}: labels are class numbers here but names earlier in the file")
        found["numbers"] = True
        keys = [int(code) for code in codes]
    found["counts"][-1] = {key: int(count) for key, count in zip(keys, counts)}


def _classes(found: dict) -> tuple[list[str] | None, int, np.ndarray | None]:
    """The file's classes (names in sorted order, as a whole-file read numbers them, or None
    for class numbers), their number, and each chunk's label counts by class code."""
    keys = {key for counts in found["counts"] for key in counts}
    if not keys:
        return None, 2, None
    if found["names"]:
        classes = sorted(keys)
        num_classes = max(2, len(classes))
    else:
        classes, num_classes = None, max(2, max(keys) + 1)
    order = classes if classes is not None else list(range(num_classes))
    counts = np.array([[chunk.get(key, 0) for key in order] for chunk in found["counts"]], np.int64)
    return classes, num_classes, np.pad(counts, ((0, 0), (0, num_classes - len(order))))


def _moments(dataset: Dataset) -> tuple[int, np.ndarray, np.ndarray]:
    """Count, mean and sum of squared deviations (M2) of a dataset's real steps, per feature."""
    steps = dataset.x[dataset.step_mask()].astype(np.float64)
    mean = steps.mean(axis=0)
    return len(steps), mean, ((steps - mean) ** 2).sum(axis=0)


def merge_moments(moments, other):
    """Two (count, mean, M2) merged (Chan et al.'s parallel variance)."""
    count_b, mean_b, m2_b = other
    count_a, mean_a, m2_a = moments
    if count_a == 0:
        return count_b, mean_b, m2_b
    total = count_a + count_b
    delta = mean_b - mean_a
    return total, mean_a + delta * count_b / total, m2_a + m2_b + delta**2 * count_a * count_b / total


def split_chunks(file: StreamedFile, fraction: float, seed: int, setting: str) -> tuple[list[int], list[int]]:
    """Kept and held-out chunks: ``fraction`` of the chunks (at least one) held out, chosen with
    the stream ``(seed, SPLIT)``. Whole chunks, so not stratified by class. ``setting``: the
    config key that asked for the split (for the message)."""
    count = len(file.chunks)
    held = max(1, int(round(fraction * count)))
    if count < 2 or held >= count:
        raise DataError(
            f"{setting}={fraction} of {file.path}, streamed in {count} chunk(s), leaves nothing to train on "
            "(a streamed file is split by whole chunks)",
            "give a separate file for it (--val-data, data.test_path), a smaller share, or raise data.memory_limit",
        )
    order = stream_rng(seed, SPLIT_STREAM).permutation(count)
    return sorted(int(i) for i in order[held:]), sorted(int(i) for i in order[:held])


class StreamSource:
    """The training batches of one run over a streamed file's chunks (see the module's text)."""

    def __init__(
        self,
        file: StreamedFile,
        chunk_indices: list[int],
        batch_size: int,
        seed: int,
        class_weights: np.ndarray | None = None,
    ):
        self.file, self.chunk_indices = file, list(chunk_indices)
        self.count = sum(file.sizes[i] for i in self.chunk_indices)
        self.batch_size = min(batch_size, self.count)
        self.seed = seed
        self.class_weights = class_weights
        self.steps_per_epoch = math.ceil(self.count / self.batch_size)
        self.timesteps = file.timesteps
        self._window: tuple[tuple[int, int], Dataset] | None = None
        self._lock = threading.Lock()

    def _windows(self, epoch: int) -> list[list[int]]:
        order = stream_rng(self.seed, SHUFFLE_STREAM, epoch).permutation(len(self.chunk_indices))
        chunks = [self.chunk_indices[i] for i in order]
        return [chunks[i : i + WINDOW_CHUNKS] for i in range(0, len(chunks), WINDOW_CHUNKS)]

    def _window_data(self, epoch: int, index: int, chunks: list[int]) -> Dataset:
        if self._window is not None and self._window[0] == (epoch, index):
            return self._window[1]
        self._window = None  # let the previous window go before reading the next
        parts = [self.file.read(chunk) for chunk in chunks]
        joined = _concatenate(parts)
        order = stream_rng(self.seed, SHUFFLE_STREAM, epoch, index).permutation(joined.size)
        window = joined.subset(order)
        self._window = ((epoch, index), window)
        return window

    def step_batches(self, epoch: int, start: int, stop: int) -> Batches:
        """Steps ``start..stop-1`` of epoch ``epoch`` (0-based), as :func:`make_batches` lays them out."""
        first, last = start * self.batch_size, min(stop * self.batch_size, self.count)
        parts, offset = [], 0
        with self._lock:
            for index, chunks in enumerate(self._windows(epoch)):
                size = sum(self.file.sizes[c] for c in chunks)
                if offset + size > first and offset < last:
                    window = self._window_data(epoch, index, chunks)
                    begin, end = max(first - offset, 0), min(last - offset, size)
                    parts.append(window.subset(np.arange(begin, end)))
                offset += size
                if offset >= last:
                    break
        return make_batches(_concatenate(parts), self.batch_size, self.class_weights)

    def batches(self, start_epoch: int, stop_epoch: int) -> Batches:
        parts = [self.step_batches(epoch, 0, self.steps_per_epoch) for epoch in range(start_epoch, stop_epoch)]
        return Batches.concatenate(parts)


class StreamedBatches:
    """Evaluation batches of a streamed file, made a chunk at a time (for validation and test).

    ``parts()`` yields batches of one fixed shape (:data:`EVALUATION_STEPS` x the evaluation
    batch), so scoring compiles once; filler sequences weigh nothing.
    """

    def __init__(self, file: StreamedFile, chunk_indices: list[int] | None = None, batch_size: int = 1024):
        self.file = file
        self.chunk_indices = list(range(len(file.chunks))) if chunk_indices is None else list(chunk_indices)
        self.size = sum(file.sizes[i] for i in self.chunk_indices)
        self.batch_size = min(batch_size, max(file.sizes[i] for i in self.chunk_indices))
        self.variable_length = file.variable_length

    def parts(self):
        for chunk in self.chunk_indices:
            batches = make_batches(self.file.read(chunk), self.batch_size)
            for start in range(0, batches.steps, EVALUATION_STEPS):
                yield batches.slice(start, start + EVALUATION_STEPS).padded_to(EVALUATION_STEPS)


def _concatenate(parts: list[Dataset]) -> Dataset:
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    y = None if first.y is None else np.concatenate([p.y for p in parts])
    ids = [i for p in parts for i in (p.ids or [])] or None
    return Dataset(
        np.concatenate([p.x for p in parts]), y, np.concatenate([p.lengths for p in parts]), first.classes, ids
    )
