"""JSONL datasets: one sequence per line, ``{"x": [...], "y": [...]}``; ``x`` a list of numbers
(one feature) or of lists (F features), ``y`` a list (per step) or a single label."""

from __future__ import annotations

import json

import numpy as np

from ...errors import DataError
from ..dataset import Dataset, pad_labels, pad_sequences
from ..labels import encode_labels, label_values


def read(text: str, where: str, first_line: int = 1) -> Dataset:
    """Parse JSONL text; ``first_line``: the file line number of its first line (a streamed chunk
    of a large file starts further down)."""
    sequences, labels, line_numbers = [], [], []
    for number, line in enumerate(text.splitlines(), start=first_line):
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


def encode(dataset: Dataset) -> bytes:
    lines = []
    for i in range(dataset.size):
        length = int(dataset.lengths[i])
        steps = dataset.x[i, :length]
        record: dict[str, object] = {"x": _round_trip_floats(steps[:, 0] if dataset.features == 1 else steps)}
        if dataset.y is not None:
            codes = dataset.y[i, :length] if dataset.y.ndim == 2 else dataset.y[i]
            labels = label_values(dataset, np.asarray(codes))
            record["y"] = labels.tolist() if isinstance(labels, np.ndarray) else labels
        lines.append(json.dumps(record, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def _round_trip_floats(values: np.ndarray) -> list:
    # float32 -> shortest decimal that reads back as the same float32
    if values.ndim == 1:
        return [float(np.format_float_positional(v, unique=True, trim="-")) for v in values]
    return [_round_trip_floats(row) for row in values]
