"""Reading and writing dataset files in any supported format (``-`` is stdin / stdout)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import BinaryIO

from ..errors import DataError, UsageError
from ..fileio import atomic
from .dataset import SEQUENCE, Dataset, check_values
from .formats import (
    BINARY_FORMATS,
    STDIN,
    WRITABLE_FORMATS,
    arff,
    csv,
    format_from_name,
    jsonl,
    npz,
    parquet,
    sniff_format,
    source_label,
    ts,
    ucr,
)


def read_dataset(
    path: str,
    fmt: str | None = None,
    task: str | None = None,
    require_labels: bool = True,
    stdin: BinaryIO | None = None,
) -> Dataset:
    """Load and validate a dataset file (``-`` reads standard input).

    Args:
        path: file path or ``-``.
        fmt: one of FORMATS; inferred from the extension (or the content for stdin) if None.
        task: ``per-step`` or ``sequence`` if the caller needs one; a file whose labels are of
            the other kind is refused. None accepts what the file holds (CSV: per step).
        require_labels: refuse input without labels (``train``, ``evaluate``).
    """
    where = source_label(path)
    raw = _read_bytes(path, stdin)
    if not raw.strip():
        raise DataError(f"{where}: the input is empty", "give at least one sequence")
    fmt = format_from_name(path, fmt) or sniff_format(raw[:4096])
    if fmt == "npz":
        dataset = npz.read(raw, where)
    elif fmt in ("parquet", "parquet-long"):
        dataset = parquet.read(raw, where, task)
    elif fmt == "ts":
        dataset = ts.read(_decode(raw, where), where)
    elif fmt == "ucr":
        dataset = ucr.read(_decode(raw, where), where)
    elif fmt == "arff":
        dataset = arff.read(_decode(raw, where), where)
    elif fmt == "csv":
        dataset = csv.read(_decode(raw, where), where, task)
    else:
        dataset = jsonl.read(_decode(raw, where), where)
    check_values(dataset, where)
    if dataset.y is None and require_labels:
        raise DataError(f"{where}: the input has no labels (y)", "add a y column/field with the labels")
    if task is not None and dataset.y is not None and dataset.task != task:
        raise DataError(f"{where}: {task_mismatch(dataset.task, task)}")
    return dataset


def task_mismatch(found: str, wanted: str) -> str:
    """Why labels of kind ``found`` cannot be used where ``wanted`` labels are needed."""
    if found == SEQUENCE:
        return "labels are one per sequence, but the model labels every step (data.task: per-step)"
    return "labels are given per step, but the model predicts one label per sequence (data.task: sequence)"


def _read_bytes(path: str, stdin: BinaryIO | None) -> bytes:
    if path == STDIN:
        stream = stdin if stdin is not None else sys.stdin.buffer
        return stream.read()
    file = Path(path)
    if not file.exists():
        raise UsageError(f"data file not found: {path}")
    if file.is_dir():
        raise UsageError(f"{path} is a directory, not a data file")
    try:
        return file.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{where}, line {line}: not UTF-8 text", "save the file as UTF-8") from None


# ---------------------------------------------------------------------------- writing


def write_dataset(dataset: Dataset, path: str, fmt: str | None = None, stdout: BinaryIO | None = None) -> str:
    """Write a dataset atomically (``-`` writes to standard output). Returns the format used."""
    if path != STDIN and Path(path).is_dir():
        raise UsageError(f"{path} is a directory; give a file name such as {path.rstrip('/')}/data.csv")
    fmt = format_from_name(path, fmt) or "csv"
    if fmt not in WRITABLE_FORMATS:
        raise UsageError(f"cannot write format {fmt!r}; choose one of {', '.join(WRITABLE_FORMATS)}")
    if path == STDIN:
        stream = stdout if stdout is not None else sys.stdout.buffer
        if fmt in BINARY_FORMATS and stream.isatty():
            name, suffix = ("NPZ", "npz") if fmt == "npz" else ("Parquet", "parquet")
            hint = f"use -o FILE.{suffix} or pipe the output"
            raise UsageError(f"refusing to write binary {name} to a terminal", hint)
        stream.write(encode_dataset(dataset, fmt))
        stream.flush()
        return fmt
    try:
        atomic.write_bytes(Path(path), encode_dataset(dataset, fmt))
    except OSError as exc:
        raise DataError(
            f"cannot write {path}: {exc.strerror}", "check that the folder exists and is writable"
        ) from None
    return fmt


def encode_dataset(dataset: Dataset, fmt: str) -> bytes:
    """The bytes of ``dataset`` in a writable format."""
    if fmt == "parquet-long":
        return parquet.encode(dataset, "long")
    return {"npz": npz.encode, "csv": csv.encode, "jsonl": jsonl.encode, "parquet": parquet.encode}[fmt](dataset)
