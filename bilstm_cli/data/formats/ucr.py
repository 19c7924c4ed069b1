"""Reader for the UCR time-series archive's text files (univariate sequence classification).

One series per line, the class label first, then the values (the archive's ``<Name>_TRAIN.tsv``
/ ``_TEST.tsv`` files of the 2018 release, tab separated, and the older ``.txt`` files, space
separated with labels such as ``1.0000000e+00``; commas are read too)::

    1	-0.6478854	-0.64199155	-0.63818632	...
    2	-0.7796831	-0.77938841	-0.77773834	...

Unequal-length datasets (2018 release) pad the shorter series with ``NaN`` to the longest: a
run of trailing ``NaN`` is padding, and the series is that much shorter (padded and masked here
like any variable-length data). A NaN or ``?`` *inside* a series is a missing value: an error
naming the line and field (impute it first, as for ``.ts``). Labels are class names, as in the
archive's ``.ts`` version of the same dataset: numbers are named by their integer value
(``1.0000000e+00`` is class ``1``) and ordered by value, text labels in sorted order.
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import DataError
from ..dataset import Dataset, pad_sequences

HINT = (
    ".tsv and .txt files are read as the UCR archive's text format (one series per line: the label, "
    "then the values); for another layout name the file .csv (with a header) or pass --input-format"
)


def read(text: str, where: str) -> Dataset:
    """Parse the text of a UCR archive file (``where`` names it in errors)."""
    sequences, labels, numbers = [], [], []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")] if "," in line else line.split()
        if fields and fields[-1] == "" and len(fields) > 2:
            fields.pop()  # a trailing comma
        if len(fields) < 2:
            raise DataError(f"{where}, line {number}: a label and no values", HINT)
        labels.append(fields[0])
        sequences.append(_series(fields[1:], where, number))
        numbers.append(number)
    if not sequences:
        raise DataError(f"{where}: no series found", "the input is empty")
    x, lengths = pad_sequences([s[:, None] for s in sequences], where)
    codes, classes = _classes(labels, numbers, where)
    return Dataset(x, codes, lengths, classes)


def _series(fields: list[str], where: str, number: int) -> np.ndarray:
    values = np.empty(len(fields), dtype=np.float64)
    for i, field in enumerate(fields):
        if field == "?":
            values[i] = np.nan
            continue
        try:
            values[i] = float(field)
        except ValueError:
            problem = "is empty" if not field else f"is not a number: {field!r}"
            raise DataError(f"{where}, line {number}: field {i + 2} (step {i}) {problem}", HINT) from None
    missing = np.isnan(values)
    length = len(values) - int(np.argmin(missing[::-1])) if not missing.all() else 0
    if length == 0:
        raise DataError(f"{where}, line {number}: every value is NaN: an empty series")
    inside = np.flatnonzero(missing[:length])
    if inside.size:
        step = int(inside[0])
        raise DataError(
            f"{where}, line {number}: field {step + 2} (step {step}) is a missing value ({fields[step]!r}) inside "
            "the series (trailing NaNs are padding, but this one is followed by values)",
            "impute missing values before training",
        )
    infinite = np.flatnonzero(np.isinf(values[:length]))
    if infinite.size:
        step = int(infinite[0])
        raise DataError(f"{where}, line {number}: field {step + 2} (step {step}) is {fields[step]!r}, not finite")
    return values[:length]


def _classes(labels: list[str], numbers: list[int], where: str) -> tuple[np.ndarray, list[str]]:
    """Codes and class names: numeric labels named by their integer value, in value order."""
    numeric = [_number(label) for label in labels]
    if all(value is not None for value in numeric):
        fractional = [i for i, value in enumerate(numeric) if not value.is_integer()]
        if fractional:
            i = fractional[0]
            raise DataError(
                f"{where}, line {numbers[i]}: label {labels[i]!r} is not a whole number",
                "the first field of each line is the class label; UCR labels are whole numbers or names",
            )
        values = sorted({int(value) for value in numeric})
        lookup = {value: code for code, value in enumerate(values)}
        codes = np.array([lookup[int(value)] for value in numeric], dtype=np.int64)
        return codes, [str(value) for value in values]
    if any(value is not None for value in numeric):
        i = next(i for i, value in enumerate(numeric) if value is not None)
        j = next(j for j, value in enumerate(numeric) if value is None)
        raise DataError(
            f"{where}: labels mix numbers (line {numbers[i]}: {labels[i]!r}) "
            f"and text (line {numbers[j]}: {labels[j]!r})",
            "use class numbers everywhere or class names everywhere",
        )
    names = sorted(set(labels))
    lookup = {name: code for code, name in enumerate(names)}
    return np.array([lookup[label] for label in labels], dtype=np.int64), names


def _number(label: str) -> float | None:
    try:
        value = float(label)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
