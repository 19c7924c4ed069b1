"""Long-form CSV datasets: one row per (sequence, step), ``sequence,step,x,y`` or
``sequence,step,x0,...,x{F-1},y``; per-sequence labels repeat on every row of a sequence."""

from __future__ import annotations

import csv
import io
import warnings

import numpy as np

from ...errors import DataError
from ..dataset import SEQUENCE, Dataset
from ..labels import MAX_LABEL, encode_labels, label_values, valid_class_numbers

# labels that mean "missing" (pandas' own words for it): refused rather than read as a class name
MISSING_WORDS = {"nan", "-nan", "na", "n/a", "#n/a", "#na", "null", "none", "<na>"}


def read(text: str, where: str, task: str | None, first_line: int = 2) -> Dataset:
    """Parse long-form CSV text; ``first_line``: the file line number of the first row after the
    header (a streamed chunk of a large file starts further down)."""
    import pandas as pd  # imported here: pandas costs ~0.5 s of start-up

    try:
        with warnings.catch_warnings():
            # index_col=False: a row with extra fields is an error, not a silent index column
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # only an empty cell is missing: pandas would also read `nan`, `NA`, `null`... as missing,
            # and the message would call a cell that holds NaN "empty"
            frame = pd.read_csv(
                io.StringIO(text), skipinitialspace=True, index_col=False, keep_default_na=False, na_values=[""]
            )
    except pd.errors.ParserWarning:
        line, fields, expected = _first_ragged_row(text, first_line)
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
    x_columns = feature_columns(columns, where)
    unexpected = [c for c in columns if c not in {"sequence", "step", "y", *x_columns}]
    if unexpected:
        raise DataError(f"{where}: unexpected column {unexpected[0]!r}", "expected sequence,step,x...,y")
    if frame.empty:
        raise DataError(f"{where}: the CSV has a header but no rows")

    numeric = {}
    for column in ["step", *x_columns]:
        raw = frame[column]
        values = pd.to_numeric(raw, errors="coerce")
        # only a column with missing values needs a closer look (its text: ~1.5 s per 10M rows)
        if values.isna().any():
            is_nan = raw.astype(str).str.strip().str.lower().str.lstrip("+-") == "nan"  # NaN, judged below
            bad = raw.isna() | (values.isna() & ~is_nan)
        else:
            bad = values.isna()  # all False
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            shown = raw.iloc[row]
            problem = "is empty" if pd.isna(shown) else f"is not a number: {shown!r}"
            raise DataError(
                f"{where}, line {row + first_line}: column {column!r} {problem}", "remove or impute missing values"
            )
        numeric[column] = values.to_numpy()
    for column in ["step", *x_columns]:
        not_finite = ~np.isfinite(numeric[column].astype(np.float64))
        if not_finite.any():
            row = int(np.argmax(not_finite))
            held = "NaN" if np.isnan(numeric[column][row]) else f"{numeric[column][row]}"
            raise DataError(
                f"{where}, line {row + first_line}: column {column!r} holds {held} at row {row + 1}",
                "remove or impute missing values",
            )
    x_values = np.column_stack([numeric[c] for c in x_columns]).astype(np.float64)
    steps = numeric["step"]
    if (steps != np.round(steps)).any():
        row = int(np.argmax(steps != np.round(steps)))
        raise DataError(f"{where}, line {row + first_line}: step {steps[row]!r} is not an integer")

    if frame["sequence"].isna().any():
        row = int(np.argmax(frame["sequence"].isna().to_numpy()))
        raise DataError(f"{where}, line {row + first_line}: column 'sequence' is empty")
    sequence_column = frame["sequence"]
    if pd.api.types.is_integer_dtype(sequence_column.dtype):  # numbered: no text to make (~1.5 s per 10M rows)
        sequence_ids = sequence_column.to_numpy()
    else:
        sequence_ids = sequence_column.astype(str).str.strip().to_numpy()
    codes, first_rows = _codes_in_order(sequence_ids)
    expected_step = pd.Series(codes).groupby(codes).cumcount().to_numpy()
    wrong = steps.astype(np.int64) != expected_step
    if wrong.any():
        row = int(np.argmax(wrong))
        duplicated = ((sequence_ids[:row] == sequence_ids[row]) & (numeric["step"][:row] == steps[row])).any()
        problem = "is duplicated" if duplicated else f"is out of order (expected step {expected_step[row]})"
        raise DataError(
            f"{where}, line {row + first_line}: sequence {str(sequence_ids[row])!r} step {int(steps[row])} {problem}",
            "each sequence's steps must run 0, 1, 2, ... in file order",
        )

    count = len(first_rows)
    lengths = np.bincount(codes, minlength=count).astype(np.int64)
    x = np.zeros((count, int(lengths.max()), len(x_columns)), dtype=np.float32)
    x[codes, expected_step] = x_values
    y, classes = None, None
    if "y" in columns:
        if pd.api.types.is_integer_dtype(frame["y"].dtype):  # class numbers: nothing can be missing
            missing = np.zeros(len(frame), bool)
        else:
            words = frame["y"].astype(str).str.strip()
            missing = (frame["y"].isna() | words.str.lower().isin(MISSING_WORDS)).to_numpy()
        if missing.any():
            row = int(np.argmax(missing))
            problem = "is empty" if pd.isna(frame["y"].iloc[row]) else f"holds a missing value ({words.iloc[row]!r})"
            raise DataError(f"{where}, line {row + first_line}: column 'y' {problem}")
        labels, classes = _encode_column(frame["y"], where, first_line)
        if task is None and _one_label_per_sequence(labels, codes, count):
            task = SEQUENCE  # auto: a label repeated on every step of its sequence is the sequence's label
        if task == SEQUENCE:
            y = _sequence_labels(labels, codes, sequence_ids, where, count, first_line)
        else:
            y = np.zeros(x.shape[:2], dtype=np.int64)
            y[codes, expected_step] = labels
    ids = [str(sequence_ids[row]) for row in first_rows]
    numbered = all(i.isdigit() for i in ids)  # keep 0, 1, ... as numbers in predict's output
    return Dataset(x, y, lengths, classes, ids=[int(i) for i in ids] if numbered else ids)


def _first_ragged_row(text: str, first_line: int = 2) -> tuple[int, int, int]:
    """(line, fields, header fields) of the first CSV row whose width differs from the header."""
    rows = csv.reader(io.StringIO(text))
    header = next(rows)
    for number, row in enumerate(rows, start=first_line):
        if row and len(row) != len(header):
            return number, len(row), len(header)
    return 0, 0, len(header)


def feature_columns(columns: list[str], where: str) -> list[str]:
    """The feature columns of a table: ``x``, or ``x0``, ``x1``, ... in order (CSV and Parquet)."""
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


def _encode_column(column, where: str, first_line: int = 2) -> tuple[np.ndarray, list[str] | None]:
    """Labels of a CSV column: class numbers (checked row by row) or class names."""
    import pandas as pd

    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().all():
        values = numbers.to_numpy(dtype=np.float64)
        bad = ~valid_class_numbers(values)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"{where}, line {row + first_line}: label {column.iloc[row]!r} is not a class number "
                f"(an integer from 0 to {MAX_LABEL})"
            )
        return values.astype(np.int64), None
    return encode_labels([v.strip() if isinstance(v, str) else v for v in column.to_numpy()], where)


def _one_label_per_sequence(labels: np.ndarray, codes: np.ndarray, count: int) -> bool:
    """Whether every sequence carries a single label on all its rows (and some sequence has
    more than one row: a one-step file says nothing either way, and stays per step)."""
    first = np.full(count, -1, dtype=np.int64)
    first[codes[::-1]] = labels[::-1]  # each sequence's label on its first row
    return bool(np.all(first[codes] == labels)) and len(labels) > count


def _sequence_labels(
    labels: np.ndarray, codes: np.ndarray, ids: np.ndarray, where: str, count: int, first_line: int = 2
) -> np.ndarray:
    per_sequence = np.full(count, -1, dtype=np.int64)
    per_sequence[codes] = labels  # the last row of each sequence wins ...
    differs = per_sequence[codes] != labels  # ... and any other value means mixed labels
    if differs.any():
        row = int(np.argmax(differs))
        raise DataError(
            f"{where}, line {row + first_line}: sequence {str(ids[row])!r} has different labels on different steps",
            "this looks like a per-step label file; use data.task: per-step, or one label per sequence",
        )
    return per_sequence


def encode(dataset: Dataset, first_sequence: int = 0, header: bool = True) -> bytes:
    """The CSV bytes of ``dataset``, its sequences numbered from ``first_sequence`` (a block of a
    larger file: see :mod:`bilstm_cli.data.block_writer`), with or without the header line."""
    import pandas as pd

    mask = dataset.step_mask()
    sequence_index, step_index = np.nonzero(mask)
    columns: dict[str, np.ndarray] = {"sequence": sequence_index + first_sequence, "step": step_index}
    features = dataset.x[mask]
    names = ["x"] if dataset.features == 1 else [f"x{i}" for i in range(dataset.features)]
    for i, name in enumerate(names):
        columns[name] = features[:, i]
    if dataset.y is not None:
        codes = dataset.y[mask] if dataset.y.ndim == 2 else dataset.y[sequence_index]
        columns["y"] = label_values(dataset, codes)
    # %.9g round-trips float32 exactly
    return pd.DataFrame(columns).to_csv(index=False, header=header, float_format="%.9g", lineterminator="\n").encode()
