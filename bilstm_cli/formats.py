"""Dataset files: NPZ, CSV (long form), JSONL and the UEA/UCR ``.ts`` format.

Formats (documented in the README):

- NPZ: ``X`` float32 ``(N, T, F)`` (or ``(N, T)`` for one feature), ``y`` integer ``(N, T)``
  per step or ``(N,)`` per sequence, optional ``lengths`` ``(N,)`` for variable length and
  optional ``classes`` (text label names; ``y`` then holds indices into it).
- CSV: one row per (sequence, step): ``sequence,step,x,y`` (one feature) or
  ``sequence,step,x0,...,x{F-1},y``. Per-sequence labels repeat the label on every row.
- JSONL: one sequence per line, ``{"x": [...], "y": [...]}``; ``x`` is a list of numbers
  (one feature) or of lists (F features), ``y`` a list (per step) or a single label.
- ``.ts``: read only, see :mod:`bilstm_cli.ts_format`.

Every reader validates and raises :class:`DataError` naming the file, the line or row, and
what is wrong. ``-`` means standard input / output.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np

from . import atomic
from .data import (
    MAX_LABEL,
    SEQUENCE,
    Dataset,
    check_values,
    encode_labels,
    pad_labels,
    pad_sequences,
    valid_class_numbers,
)
from .errors import DataError, UsageError

FORMATS = ("csv", "npz", "jsonl", "ts")
WRITABLE_FORMATS = ("csv", "npz", "jsonl")
_EXTENSIONS = {".csv": "csv", ".npz": "npz", ".jsonl": "jsonl", ".ndjson": "jsonl", ".ts": "ts"}


def format_from_name(path: str, explicit: str | None = None) -> str | None:
    """The format given explicitly, else from the file extension; None for '-' (sniff)."""
    if explicit:
        return explicit
    if path == "-":
        return None
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise UsageError(
            f"cannot tell the format of {path!r} from its extension",
            f"use a name ending in .csv, .npz, .jsonl or .ts, or pass --format ({'|'.join(FORMATS)})",
        )
    return _EXTENSIONS[suffix]


def sniff_format(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return "npz"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()  # a UTF-8 byte-order mark is not content
    if text.startswith(b"{"):
        return "jsonl"
    if text.startswith((b"@", b"#")):
        return "ts"
    return "csv"


# ---------------------------------------------------------------------------- reading


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
    where = "<stdin>" if path == "-" else path
    raw = _read_bytes(path, stdin)
    if not raw.strip():
        raise DataError(f"{where}: the input is empty", "give at least one sequence")
    fmt = format_from_name(path, fmt) or sniff_format(raw[:64])
    if fmt == "npz":
        dataset = _read_npz(raw, where)
    elif fmt == "ts":
        from .ts_format import parse_ts

        dataset = parse_ts(_decode(raw, where), where)
    else:
        text = _decode(raw, where)
        dataset = _read_csv(text, where, task) if fmt == "csv" else _read_jsonl(text, where)
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
    if path == "-":
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


def _read_npz(raw: bytes, where: str) -> Dataset:
    try:
        archive = np.load(io.BytesIO(raw), allow_pickle=False)
        contents = {key: archive[key] for key in archive.files}
    except Exception as exc:  # numpy raises many types for a corrupt archive
        raise DataError(f"{where}: not a readable NPZ archive ({type(exc).__name__}: {exc})") from None
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


def _read_csv(text: str, where: str, task: str | None) -> Dataset:
    import pandas as pd  # imported here: pandas costs ~0.5 s of start-up

    try:
        with warnings.catch_warnings():
            # index_col=False: a row with extra fields is an error, not a silent index column
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.StringIO(text), skipinitialspace=True, index_col=False)
    except pd.errors.ParserWarning:
        line, fields, expected = _first_ragged_row(text)
        raise DataError(f"{where}, line {line}: {fields} fields, but the header has {expected}") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{where}: malformed CSV: {str(exc).strip()}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    columns = list(frame.columns)
    if "sequence" not in columns or "step" not in columns:
        raise DataError(
            f"{where}: missing column(s) {', '.join(c for c in ('sequence', 'step') if c not in columns)} "
            f"(found: {', '.join(columns)})",
            "the CSV header must be sequence,step,x,y or sequence,step,x0,x1,...,y",
        )
    feature_columns = _feature_columns(columns, where)
    unexpected = [c for c in columns if c not in {"sequence", "step", "y", *feature_columns}]
    if unexpected:
        raise DataError(f"{where}: unexpected column {unexpected[0]!r}", "expected sequence,step,x...,y")
    if frame.empty:
        raise DataError(f"{where}: the CSV has a header but no rows")

    numeric = {}
    for column in ["step", *feature_columns]:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & ~frame[column].isna() | frame[column].isna()
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            shown = frame[column].iloc[row]
            problem = "is empty" if pd.isna(shown) else f"is not a number: {shown!r}"
            raise DataError(f"{where}, line {row + 2}: column {column!r} {problem}")
        numeric[column] = values.to_numpy()
    x_values = np.column_stack([numeric[c] for c in feature_columns]).astype(np.float64)
    not_finite = ~np.isfinite(x_values)
    if not_finite.any():
        row, col = (int(i) for i in np.argwhere(not_finite)[0])
        raise DataError(
            f"{where}, line {row + 2}: column {feature_columns[col]!r} is {x_values[row, col]}",
            "remove or impute missing values",
        )
    steps = numeric["step"]
    if (steps != np.round(steps)).any():
        row = int(np.argmax(steps != np.round(steps)))
        raise DataError(f"{where}, line {row + 2}: step {steps[row]!r} is not an integer")

    if frame["sequence"].isna().any():
        row = int(np.argmax(frame["sequence"].isna().to_numpy()))
        raise DataError(f"{where}, line {row + 2}: column 'sequence' is empty")
    sequence_ids = frame["sequence"].astype(str).str.strip().to_numpy()
    codes, first_rows = _codes_in_order(sequence_ids)
    expected_step = pd.Series(codes).groupby(codes).cumcount().to_numpy()
    wrong = steps.astype(np.int64) != expected_step
    if wrong.any():
        row = int(np.argmax(wrong))
        seen = frame.iloc[:row]
        duplicated = ((seen["sequence"].astype(str) == sequence_ids[row]) & (numeric["step"][:row] == steps[row])).any()
        problem = "is duplicated" if duplicated else f"is out of order (expected step {expected_step[row]})"
        raise DataError(
            f"{where}, line {row + 2}: sequence {sequence_ids[row]!r} step {int(steps[row])} {problem}",
            "each sequence's steps must run 0, 1, 2, ... in file order",
        )

    count = len(first_rows)
    lengths = np.bincount(codes, minlength=count).astype(np.int64)
    x = np.zeros((count, int(lengths.max()), len(feature_columns)), dtype=np.float32)
    x[codes, expected_step] = x_values
    y, classes = None, None
    if "y" in columns:
        missing = frame["y"].isna().to_numpy()
        if missing.any():
            raise DataError(f"{where}, line {int(np.argmax(missing)) + 2}: column 'y' is empty")
        labels, classes = _encode_column(frame["y"], where)
        if task == SEQUENCE:
            y = _sequence_labels(labels, codes, sequence_ids, where, count)
        else:
            y = np.zeros(x.shape[:2], dtype=np.int64)
            y[codes, expected_step] = labels
    ids = [str(sequence_ids[row]) for row in first_rows]
    numbered = all(i.isdigit() for i in ids)  # keep 0, 1, ... as numbers in predict's output
    return Dataset(x, y, lengths, classes, ids=[int(i) for i in ids] if numbered else ids)


def _first_ragged_row(text: str) -> tuple[int, int, int]:
    """(line, fields, header fields) of the first CSV row whose width differs from the header."""
    rows = csv.reader(io.StringIO(text))
    header = next(rows)
    for number, row in enumerate(rows, start=2):
        if row and len(row) != len(header):
            return number, len(row), len(header)
    return 0, 0, len(header)


def _feature_columns(columns: list[str], where: str) -> list[str]:
    if "x" in columns:
        return ["x"]
    numbered = sorted((c for c in columns if c.startswith("x") and c[1:].isdigit()), key=lambda c: int(c[1:]))
    if not numbered:
        raise DataError(
            f"{where}: missing feature column(s): expected 'x' or 'x0', 'x1', ... (found: {', '.join(columns)})"
        )
    expected = [f"x{i}" for i in range(len(numbered))]
    if numbered != expected:
        missing = next(e for e, n in zip(expected, numbered) if e != n)
        raise DataError(f"{where}: feature columns must be x0..x{len(numbered) - 1}; {missing!r} is missing")
    return numbered


def _codes_in_order(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes numbering sequence ids in order of first appearance."""
    unique, first_rows, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first_rows)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inverse], first_rows[order]


def _encode_column(column, where: str) -> tuple[np.ndarray, list[str] | None]:
    """Labels of a CSV column: class numbers (checked row by row) or class names."""
    import pandas as pd

    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().all():
        values = numbers.to_numpy(dtype=np.float64)
        bad = ~valid_class_numbers(values)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"{where}, line {row + 2}: label {column.iloc[row]!r} is not a class number "
                f"(an integer from 0 to {MAX_LABEL})"
            )
        return values.astype(np.int64), None
    return encode_labels([v.strip() if isinstance(v, str) else v for v in column.to_numpy()], where)


def _sequence_labels(labels: np.ndarray, codes: np.ndarray, ids: np.ndarray, where: str, count: int) -> np.ndarray:
    per_sequence = np.full(count, -1, dtype=np.int64)
    per_sequence[codes] = labels  # the last row of each sequence wins ...
    differs = per_sequence[codes] != labels  # ... and any other value means mixed labels
    if differs.any():
        row = int(np.argmax(differs))
        raise DataError(
            f"{where}, line {row + 2}: sequence {ids[row]!r} has different labels on different steps",
            "this looks like a per-step label file; use data.task: per-step, or one label per sequence",
        )
    return per_sequence


def _read_jsonl(text: str, where: str) -> Dataset:
    sequences, labels, line_numbers = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}, line {number}: malformed JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(record, dict) or "x" not in record:
            raise DataError(
                f'{where}, line {number}: expected an object with an \'x\' field, e.g. {{"x": [...], "y": [...]}}'
            )
        sequences.append(_jsonl_features(record["x"], where, number))
        labels.append(record.get("y"))
        line_numbers.append(number)
    if not sequences:
        raise DataError(f"{where}: no sequences found", "the input is empty")
    x, lengths = pad_sequences(sequences, where)
    present = [label is not None for label in labels]
    if not any(present):
        return Dataset(x, None, lengths)
    if not all(present):
        raise DataError(f"{where}, line {line_numbers[present.index(False)]}: 'y' is missing (other lines have it)")
    per_step = [isinstance(label, list) for label in labels]
    if any(per_step) and not all(per_step):
        odd = per_step.index(not per_step[0])
        raise DataError(f"{where}, line {line_numbers[odd]}: 'y' mixes per-step lists and single labels across lines")
    if not per_step[0]:
        codes, classes = encode_labels(labels, where)
        return Dataset(x, codes, lengths, classes)
    for i, (label, length) in enumerate(zip(labels, lengths)):
        if len(label) != length:
            raise DataError(f"{where}, line {line_numbers[i]}: 'y' has {len(label)} labels but 'x' has {length} steps")
    flat = [value for label in labels for value in label]
    nested = [i for i, label in enumerate(labels) if any(isinstance(v, (list, dict)) for v in label)]
    if nested:
        raise DataError(f"{where}, line {line_numbers[nested[0]]}: 'y' must hold one label per step, not lists")
    try:
        codes, classes = encode_labels(flat, where)
    except DataError as exc:
        raise DataError(exc.message, exc.hint) from None
    splits = np.cumsum(lengths)[:-1]
    return Dataset(x, pad_labels(np.split(codes, splits), x.shape[1]), lengths, classes)


def _jsonl_features(values: object, where: str, number: int) -> np.ndarray:
    if not isinstance(values, list) or not values:
        raise DataError(f"{where}, line {number}: 'x' must be a non-empty list of numbers or of lists")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError):
        raise DataError(
            f"{where}, line {number}: 'x' must hold numbers only, with the same number of features at every step"
        ) from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise DataError(f"{where}, line {number}: 'x' must be a list of numbers or a list of lists of numbers")
    if not np.isfinite(array).all():
        step = int(np.argwhere(~np.isfinite(array))[0][0])
        raise DataError(f"{where}, line {number}: 'x' step {step} is not a finite number")
    return array


# ---------------------------------------------------------------------------- writing


def write_dataset(dataset: Dataset, path: str, fmt: str | None = None, stdout: BinaryIO | None = None) -> str:
    """Write a dataset atomically (``-`` writes to standard output). Returns the format used."""
    if path != "-" and Path(path).is_dir():
        raise UsageError(f"{path} is a directory; give a file name such as {path.rstrip('/')}/data.csv")
    fmt = format_from_name(path, fmt) or "csv"
    if fmt not in WRITABLE_FORMATS:
        raise UsageError(f"cannot write format {fmt!r}; choose one of {', '.join(WRITABLE_FORMATS)}")
    if path == "-":
        stream = stdout if stdout is not None else sys.stdout.buffer
        if fmt == "npz" and stream.isatty():
            raise UsageError("refusing to write binary NPZ to a terminal", "use -o FILE.npz or pipe the output")
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
    if fmt == "npz":
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
    if fmt == "csv":
        return _encode_csv(dataset)
    return _encode_jsonl(dataset)


def _label_values(dataset: Dataset, codes: np.ndarray):
    """Label names where the dataset has them, else the integer codes."""
    return np.asarray(dataset.classes, dtype=object)[codes] if dataset.classes is not None else codes


def _encode_csv(dataset: Dataset) -> bytes:
    import pandas as pd

    mask = dataset.step_mask()
    sequence_index, step_index = np.nonzero(mask)
    columns: dict[str, np.ndarray] = {"sequence": sequence_index, "step": step_index}
    features = dataset.x[mask]
    names = ["x"] if dataset.features == 1 else [f"x{i}" for i in range(dataset.features)]
    for i, name in enumerate(names):
        columns[name] = features[:, i]
    if dataset.y is not None:
        codes = dataset.y[mask] if dataset.y.ndim == 2 else dataset.y[sequence_index]
        columns["y"] = _label_values(dataset, codes)
    # %.9g round-trips float32 exactly
    return pd.DataFrame(columns).to_csv(index=False, float_format="%.9g", lineterminator="\n").encode()


def _encode_jsonl(dataset: Dataset) -> bytes:
    lines = []
    for i in range(dataset.size):
        length = int(dataset.lengths[i])
        steps = dataset.x[i, :length]
        record: dict[str, object] = {"x": _round_trip_floats(steps[:, 0] if dataset.features == 1 else steps)}
        if dataset.y is not None:
            codes = dataset.y[i, :length] if dataset.y.ndim == 2 else dataset.y[i]
            labels = _label_values(dataset, np.asarray(codes))
            record["y"] = labels.tolist() if isinstance(labels, np.ndarray) else labels
        lines.append(json.dumps(record, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def _round_trip_floats(values: np.ndarray) -> list:
    # float32 -> shortest decimal that reads back as the same float32
    if values.ndim == 1:
        return [float(np.format_float_positional(v, unique=True, trim="-")) for v in values]
    return [_round_trip_floats(row) for row in values]
