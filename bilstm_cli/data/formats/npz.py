"""NPZ datasets: ``X`` float32 ``(N, T, F)`` (or ``(N, T)``), ``y`` integer ``(N, T)`` per step or
``(N,)`` per sequence, optional ``lengths`` ``(N,)`` and optional ``classes`` (label names)."""

from __future__ import annotations

import io
import zipfile

import numpy as np

from ...errors import DataError
from ..dataset import Dataset
from ..labels import MAX_LABEL, encode_labels, valid_class_numbers


def read(raw: bytes, where: str) -> Dataset:
    # numpy tries anything that is not a zip archive as a pickle, and its error then suggests
    # allow_pickle=True: exactly what not to do with a file one does not know
    if not zipfile.is_zipfile(io.BytesIO(raw)):
        raise DataError(
            f"{where}: not a valid NPZ file (an NPZ file is a zip archive of .npy arrays; this is not a zip archive)",
            "write it with numpy.savez(path, X=..., y=...)",
        )
    try:
        archive = np.load(io.BytesIO(raw), allow_pickle=False)
        contents = {key: archive[key] for key in archive.files}
    except Exception as exc:  # numpy raises many types for a corrupt archive
        raise DataError(f"{where}: not a readable NPZ archive ({type(exc).__name__}: {exc})") from None
    return from_arrays(contents, where)


def from_arrays(contents, where: str) -> Dataset:
    """The dataset in an NPZ archive's arrays (a whole file, or memory-mapped slices of one)."""
    if "X" not in contents:
        raise DataError(f"{where}: NPZ has no array 'X' (found: {', '.join(contents) or 'nothing'})")
    x = contents["X"]
    if x.dtype.kind not in "fiub":
        raise DataError(f"{where}: X has dtype {x.dtype}; it must be numeric")
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise DataError(f"{where}: X must be (sequences, steps[, features]), got shape {x.shape}")
    x = x.astype(np.float32)
    lengths = contents.get("lengths")
    if lengths is None:
        lengths = np.full(x.shape[0], x.shape[1], dtype=np.int64)
    elif lengths.dtype.kind not in "iu" or lengths.shape != (x.shape[0],):
        raise DataError(
            f"{where}: lengths must be integers of shape ({x.shape[0]},), got {lengths.dtype} {lengths.shape}"
        )
    lengths = lengths.astype(np.int64)
    # padding may hold anything in a user's file: zero it so it can never leak into a model
    x[np.arange(x.shape[1])[None, :] >= lengths[:, None]] = 0.0
    y, classes = None, None
    if "y" in contents:
        y_raw = contents["y"]
        if (
            y_raw.ndim not in (1, 2)
            or y_raw.shape[0] != x.shape[0]
            or (y_raw.ndim == 2 and y_raw.shape[1] != x.shape[1])
        ):
            raise DataError(
                f"{where}: y has shape {y_raw.shape} but X has {x.shape[0]} sequences of {x.shape[1]} steps",
                f"y must be ({x.shape[0]}, {x.shape[1]}) per step or ({x.shape[0]},) per sequence",
            )
        if y_raw.ndim == 2:  # only real steps carry labels; padding may hold anything
            real = np.arange(x.shape[1])[None, :] < lengths[:, None]
            codes, classes = _encode_array_labels(y_raw[real], where)
            y = np.zeros(y_raw.shape, dtype=np.int64)
            y[real] = codes
        else:
            y, classes = _encode_array_labels(y_raw, where)
        if "classes" in contents and classes is None:
            classes = [str(name) for name in contents["classes"]]
            if y.size and y.max() >= len(classes):
                raise DataError(f"{where}: y holds label {int(y.max())} but classes lists only {len(classes)} names")
    return Dataset(x, y, lengths, classes)


def _encode_array_labels(values: np.ndarray, where: str) -> tuple[np.ndarray, list[str] | None]:
    if values.dtype.kind in "iuf":
        bad = ~valid_class_numbers(values)
        if bad.any():
            raise DataError(
                f"{where}: label {values[bad][0].item()!r} is not a class number (an integer from 0 to {MAX_LABEL})"
            )
        return values.astype(np.int64), None
    if values.dtype.kind == "b":
        return values.astype(np.int64), None
    return encode_labels(values.astype(str), where)


def encode(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    arrays = {"X": dataset.x}
    if dataset.y is not None:
        arrays["y"] = dataset.y
    if dataset.variable_length:
        arrays["lengths"] = dataset.lengths
    if dataset.classes is not None:
        arrays["classes"] = np.array(dataset.classes)
    np.savez(buffer, **arrays)
    return buffer.getvalue()
