"""Parquet datasets (needs ``pyarrow``: ``pip install "bilstm[parquet]"``), in either of two layouts,
told apart by the type of column ``x``:

- one row per sequence (as JSONL): ``x`` a list of numbers (one feature) or a list of lists
  (F features per step), ``y`` a single label or a list of per-step labels, optional
  ``sequence`` (the sequences' ids, printed by ``predict``);
- long form (as CSV): one row per (sequence, step), columns ``sequence``, ``step``, ``x`` or
  ``x0..x{F-1}``, ``y``; a sequence's steps run 0, 1, 2, ... in row order, and a label
  repeated on every step of its sequence is the sequence's label.

Labels are class numbers (integer columns, or whole floats) or names (strings, including
pandas categoricals). Errors name the file, the column and the row (counted from 0, as
``pandas.read_parquet(path).iloc[row]``). Columns that pandas writes for an index
(``__index_level_0__``...) are ignored; any other extra column is an error.
"""

from __future__ import annotations

import io

import numpy as np

from ...errors import DataError, UsageError, first_line
from ...limits import GIB, MAX_DECODED_BYTES
from ..dataset import SEQUENCE, Dataset
from ..labels import MAX_LABEL, encode_labels, label_values, valid_class_numbers
from .csv import feature_columns as _feature_columns  # the same column rule as CSV

INSTALL = 'pip install "bilstm[parquet]"  (or: pip install "pyarrow>=14")'
MAGIC = b"PAR1"  # the first and last four bytes of every Parquet file
LAYOUTS = ("rows", "long")  # one row per sequence (the default), one row per step


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("reading or writing Parquet files needs pyarrow, which is not installed", INSTALL) from None
    return pa, pq


# ---------------------------------------------------------------------------- reading


def read(raw: bytes, where: str, task: str | None) -> Dataset:
    pa, pq = _pyarrow()
    if not (raw.startswith(MAGIC) and raw.endswith(MAGIC)):
        raise DataError(
            f"{where}: not a Parquet file (a Parquet file starts and ends with the bytes 'PAR1')",
            "write it with pandas.DataFrame.to_parquet or pyarrow.parquet.write_table",
        )
    try:
        file = pq.ParquetFile(io.BytesIO(raw))
        decoded = sum(file.metadata.row_group(i).total_byte_size for i in range(file.metadata.num_row_groups))
        if decoded > MAX_DECODED_BYTES:
            raise DataError(
                f"{where}: the columns take {decoded / GIB:.1f} GiB once decoded, more than the "
                f"{MAX_DECODED_BYTES / GIB:.0f} GiB bilstm reads at once",
                "split the data into several files",
            )
        table = file.read()
    except DataError:
        raise
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{where}: not a readable Parquet file ({first_line(exc)})") from None
    return from_table(table, where, task)


def from_table(table, where: str, task: str | None) -> Dataset:
    """The dataset in a pyarrow table of either layout (a whole file, or a streamed chunk of one)."""
    pa, _ = _pyarrow()
    columns = [name for name in table.column_names if not name.startswith("__index_level_")]
    if len(set(columns)) != len(columns):
        repeated = next(name for name in columns if columns.count(name) > 1)
        raise DataError(f"{where}: column {repeated!r} appears more than once")
    if table.num_rows == 0:
        raise DataError(f"{where}: the Parquet file has columns ({', '.join(columns)}) but no rows")
    found = ", ".join(columns) or "none"
    if "x" in columns and _is_list(pa, table.schema.field("x").type):
        return _read_rows(pa, table, columns, where)
    if "sequence" in columns and "step" in columns:
        return _read_long(pa, table, columns, where, task)
    raise DataError(
        f"{where}: neither Parquet layout: no list column 'x', and no 'sequence' and 'step' columns (found: {found})",
        "one row per sequence: x (list of numbers, or of lists), y; or one row per step: sequence, step, x..., y",
    )


def _is_list(pa, kind) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)


def _column(table, name: str):
    import pyarrow as pa

    column = table.column(name).combine_chunks()
    if pa.types.is_dictionary(column.type):  # a pandas categorical
        column = column.dictionary_decode()
    return column


def _first_null(column) -> int | None:
    if column.null_count == 0:
        return None
    return int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))


def _numbers(pa, column, where: str, name: str, rows=None) -> np.ndarray:
    """A numeric arrow array as float64, refusing other types, nulls, NaN and infinities."""
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        raise DataError(
            f"{where}: column {name!r} holds {kind}, not numbers",
            "features must be integer or floating-point columns (lists of them in the one-row-per-sequence layout)",
        )
    null = _first_null(column)
    if null is not None:
        raise DataError(f"{where}, {_row(null, rows)}: column {name!r} is missing (null)", "impute missing values")
    values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        index = int(np.argmax(bad))
        held = "NaN" if np.isnan(values[index]) else f"{values[index]}"
        raise DataError(f"{where}, {_row(index, rows)}: column {name!r} holds {held}", "remove or impute it")
    return values


def _row(index: int, rows) -> str:
    """``row N`` for a value at ``index``; ``rows`` maps flattened list values back to rows."""
    if rows is None:
        return f"row {index}"
    return f"row {int(rows[index])}"


def _labels(pa, column, where: str, rows=None) -> tuple[np.ndarray, list[str] | None]:
    """Class numbers or names from an arrow array (flattened labels: ``rows`` maps them to rows)."""
    if pa.types.is_dictionary(column.type):  # categorical labels inside lists
        column = column.dictionary_decode()
    kind = column.type
    null = _first_null(column)
    if null is not None:
        raise DataError(f"{where}, {_row(null, rows)}: column 'y' is missing (null)", "every sequence needs a label")
    if pa.types.is_boolean(kind):
        return column.to_numpy(zero_copy_only=False).astype(np.int64), None
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = column.to_numpy(zero_copy_only=False).astype(np.float64)
        bad = ~valid_class_numbers(values)
        if bad.any():
            index = int(np.argmax(bad))
            shown = column[index].as_py()
            raise DataError(
                f"{where}, {_row(index, rows)}: label {shown!r} in column 'y' is not a class number "
                f"(an integer from 0 to {MAX_LABEL})",
                "labels must be class numbers 0, 1, 2, ... or class names (strings)",
            )
        return values.astype(np.int64), None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        names = [value.strip() for value in column.to_pylist()]
        if "" in names:
            raise DataError(f"{where}, {_row(names.index(''), rows)}: column 'y' is an empty string")
        return encode_labels(names, where)
    raise DataError(
        f"{where}: column 'y' holds {kind}",
        "labels must be integers or strings (one per sequence), or lists of them (one per step)",
    )


def _sequence_column(pa, table, where: str):
    """The ``sequence`` column (the sequences' ids): integers or strings, none missing."""
    column = _column(table, "sequence")
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataError(f"{where}: column 'sequence' holds {kind}", "sequence ids must be integers or strings")
    null = _first_null(column)
    if null is not None:
        raise DataError(f"{where}, row {null}: column 'sequence' is missing (null)")
    return column


def _ids(column) -> list:
    values = column.to_pylist()
    return [value.strip() if isinstance(value, str) else value for value in values]


def _unexpected(columns: list[str], allowed: set[str], where: str, layout: str) -> None:
    extra = [name for name in columns if name not in allowed]
    if extra:
        raise DataError(
            f"{where}: unexpected column {extra[0]!r} in the {layout} layout (found: {', '.join(columns)})",
            f"expected columns: {', '.join(sorted(allowed))}; drop the others before writing the file",
        )


def _read_rows(pa, table, columns: list[str], where: str) -> Dataset:
    """One row per sequence: ``x`` list<number> or list<list<number>>, ``y`` label or list, ``sequence``."""
    _unexpected(columns, {"sequence", "x", "y"}, where, "one-row-per-sequence")
    x_column = _column(table, "x")
    null = _first_null(x_column)
    if null is not None:
        raise DataError(f"{where}, row {null}: column 'x' is missing (null)")
    steps = _list_lengths(x_column)
    if (steps == 0).any():
        row = int(np.argmin(steps))
        raise DataError(f"{where}, row {row}: column 'x' is an empty list", "every sequence needs at least one step")
    step_rows = np.repeat(np.arange(len(steps), dtype=np.int32), steps)  # the row of every step
    inner = x_column.flatten()
    if _is_list(pa, inner.type):
        null = _first_null(inner)
        if null is not None:
            raise DataError(f"{where}, row {int(step_rows[null])}: column 'x' has a missing (null) step")
        features = _list_lengths(inner)
        if (features != features[0]).any():
            odd = int(np.argmax(features != features[0]))
            row = int(step_rows[odd])
            step = odd - int(np.searchsorted(step_rows, row))
            raise DataError(
                f"{where}, row {row}: column 'x' step {step} has {features[odd]} features, "
                f"but row 0 step 0 has {features[0]}",
                "every step of every sequence needs the same number of features",
            )
        if features[0] == 0:
            raise DataError(f"{where}, row 0: column 'x' step 0 is an empty list (no features)")
        values = _numbers(pa, inner.flatten(), where, "x", np.repeat(step_rows, features))
        values = values.reshape(-1, int(features[0]))
    else:
        values = _numbers(pa, inner, where, "x", step_rows)[:, None]
    # padded in one assignment (not a Python loop over sequences: 10M of them took ~30 s and ~10 GB)
    index = np.int32 if len(values) < 2**31 else np.int64
    position = np.arange(len(values), dtype=index) - np.repeat((np.cumsum(steps) - steps).astype(index), steps)
    lengths = steps.astype(np.int64)
    x = np.zeros((len(steps), int(steps.max()), values.shape[1]), dtype=np.float32)
    x[step_rows, position] = values
    ids = _ids(_sequence_column(pa, table, where)) if "sequence" in columns else None
    if "y" not in columns:
        return Dataset(x, None, lengths, ids=ids)
    y_column = _column(table, "y")
    if not _is_list(pa, y_column.type):
        codes, classes = _labels(pa, y_column, where)
        return Dataset(x, codes, lengths, classes, ids=ids)
    null = _first_null(y_column)
    if null is not None:
        raise DataError(f"{where}, row {null}: column 'y' is missing (null)")
    label_counts = _list_lengths(y_column)
    if (label_counts != steps).any():
        row = int(np.argmax(label_counts != steps))
        raise DataError(
            f"{where}, row {row}: column 'y' has {label_counts[row]} labels but 'x' has {steps[row]} steps",
            "a list of labels needs one label per step (or give one label per sequence)",
        )
    flat = y_column.flatten()
    if _is_list(pa, flat.type):
        raise DataError(f"{where}: column 'y' holds {y_column.type}; per-step labels are a list of labels, not lists")
    codes, classes = _labels(pa, flat, where, step_rows)
    y = np.zeros(x.shape[:2], dtype=np.int64)
    y[step_rows, position] = codes
    return Dataset(x, y, lengths, classes, ids=ids)


def _list_lengths(column) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)


def _read_long(pa, table, columns: list[str], where: str, task: str | None) -> Dataset:
    """One row per (sequence, step): ``sequence``, ``step``, ``x`` or ``x0..``, ``y``."""
    feature_columns = _feature_columns(columns, where)
    _unexpected(columns, {"sequence", "step", "y", *feature_columns}, where, "long (one row per step)")
    sequence = _sequence_column(pa, table, where)
    step_column = _column(table, "step")
    if not pa.types.is_integer(step_column.type):
        raise DataError(
            f"{where}: column 'step' holds {step_column.type}, not integers",
            "steps are 0, 1, 2, ... within each sequence: write the column as integers",
        )
    steps = _numbers(pa, step_column, where, "step").astype(np.int64)
    id_values = _ids(sequence)
    sequence_ids = np.array([str(v) for v in id_values], dtype=object)
    _, first_rows, inverse = np.unique(sequence_ids.astype(str), return_index=True, return_inverse=True)
    order = np.argsort(first_rows)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    codes = rank[inverse].ravel()
    first_rows = first_rows[order]
    count = len(first_rows)
    expected = _position_in_sequence(codes, count)
    wrong = steps != expected
    if wrong.any():
        row = int(np.argmax(wrong))
        earlier = (codes[:row] == codes[row]) & (steps[:row] == steps[row])
        problem = "is duplicated" if earlier.any() else f"is out of order (expected step {expected[row]})"
        raise DataError(
            f"{where}, row {row}: sequence {sequence_ids[row]!r} step {steps[row]} {problem}",
            "each sequence's steps must run 0, 1, 2, ... in row order",
        )
    values = np.column_stack([_numbers(pa, _column(table, name), where, name) for name in feature_columns])
    lengths = np.bincount(codes, minlength=count).astype(np.int64)
    x = np.zeros((count, int(lengths.max()), len(feature_columns)), dtype=np.float32)
    x[codes, expected] = values
    ids = [id_values[row] for row in first_rows]
    if "y" not in columns:
        return Dataset(x, None, lengths, ids=ids)
    y_column = _column(table, "y")
    if _is_list(pa, y_column.type):
        raise DataError(f"{where}: column 'y' holds lists in the long layout", "one label per row (per step)")
    labels, classes = _labels(pa, y_column, where)
    first = np.full(count, -1, dtype=np.int64)
    first[codes[::-1]] = labels[::-1]  # each sequence's label on its first row
    one_label = bool(np.all(first[codes] == labels))
    if task is None and one_label and len(labels) > count:
        task = SEQUENCE  # auto: a label repeated on every step of its sequence is the sequence's label
    if task == SEQUENCE:
        if not one_label:
            row = int(np.argmax(first[codes] != labels))
            raise DataError(
                f"{where}, row {row}: sequence {sequence_ids[row]!r} has different labels on different steps",
                "this looks like a per-step label file; use data.task: per-step, or one label per sequence",
            )
        return Dataset(x, first, lengths, classes, ids=ids)
    y = np.zeros(x.shape[:2], dtype=np.int64)
    y[codes, expected] = labels
    return Dataset(x, y, lengths, classes, ids=ids)


def _position_in_sequence(codes: np.ndarray, count: int) -> np.ndarray:
    """For every row, how many earlier rows belong to the same sequence (0, 1, 2, ...)."""
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=count))[:-1]])
    position = np.empty_like(codes)
    position[order] = np.arange(len(codes)) - starts[codes[order]]
    return position


# ---------------------------------------------------------------------------- writing


def encode(dataset: Dataset, layout: str = "rows") -> bytes:
    """The Parquet bytes of ``dataset``: one row per sequence (``rows``) or per step (``long``)."""
    pa, pq = _pyarrow()
    table = to_table(dataset, layout)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def to_table(dataset: Dataset, layout: str = "rows", first_sequence: int = 0):
    """The pyarrow table of ``dataset`` in a layout; long form numbers sequences from
    ``first_sequence`` (a block of a larger file: see :mod:`bilstm_cli.data.block_writer`)."""
    pa, _ = _pyarrow()
    return _long_table(pa, dataset, first_sequence) if layout == "long" else _rows_table(pa, dataset)


def _label_array(pa, dataset: Dataset, codes: np.ndarray):
    values = label_values(dataset, codes)
    if dataset.classes is not None:
        return pa.array([str(v) for v in values], type=pa.string())
    return pa.array(np.asarray(values, dtype=np.int64))


def _rows_table(pa, dataset: Dataset):
    lengths = dataset.lengths
    mask = dataset.step_mask()
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    steps = dataset.x[mask]  # (total steps, F) float32
    if dataset.features == 1:
        x = pa.ListArray.from_arrays(pa.array(offsets), pa.array(steps[:, 0]))
    else:
        starts = np.arange(0, steps.size + 1, dataset.features, dtype=np.int32)
        per_step = pa.ListArray.from_arrays(pa.array(starts), pa.array(steps.reshape(-1)))
        x = pa.ListArray.from_arrays(pa.array(offsets), per_step)
    columns = {"x": x}
    if dataset.y is not None:
        if dataset.y.ndim == 1:
            columns["y"] = _label_array(pa, dataset, dataset.y)
        else:
            columns["y"] = pa.ListArray.from_arrays(pa.array(offsets), _label_array(pa, dataset, dataset.y[mask]))
    return pa.table(columns)


def _long_table(pa, dataset: Dataset, first_sequence: int = 0):
    mask = dataset.step_mask()
    sequence_index, step_index = np.nonzero(mask)
    columns = {
        "sequence": pa.array(sequence_index.astype(np.int64) + first_sequence),
        "step": pa.array(step_index.astype(np.int64)),
    }
    features = dataset.x[mask]
    names = ["x"] if dataset.features == 1 else [f"x{i}" for i in range(dataset.features)]
    for i, name in enumerate(names):
        columns[name] = pa.array(features[:, i])
    if dataset.y is not None:
        codes = dataset.y[mask] if dataset.y.ndim == 2 else dataset.y[sequence_index]
        columns["y"] = _label_array(pa, dataset, codes)
    return pa.table(columns)
