"""Reader for the UEA/UCR time-series archive ``.ts`` format (sequence classification).

A small reader instead of sktime/aeon: those pull in far more than one parser. Supported:

    # comments (the archive's own tools also accept % comments)
    @problemName BasicMotions
    @timeStamps false
    @missing false
    @univariate false
    @dimensions 2            (optional)
    @equalLength false
    @seriesLength 100        (optional, equal length only)
    @classLabel true walk run
    @data
    0.1,0.2,0.3:1.0,1.1,1.2:walk        <- dimensions separated by ':', the label last

Variable-length series are padded and masked; multivariate series become features.
``@timeStamps true`` data is refused (rare in the archive), and so are regression files
(``@targetLabel true``: bilstm classifies). Missing values (``?``) are errors naming the line
and dimension: impute them first (a silent imputation would change the data behind the
user's back). Labels are the names declared in ``@classLabel``, in that order.
"""

from __future__ import annotations

import numpy as np

from ...errors import DataError
from ..dataset import Dataset, pad_sequences

_BOOLEAN_TAGS = ("@timestamps", "@missing", "@univariate", "@equallength")
_COMMENTS = ("#", "%")


def read(text: str, where: str) -> Dataset:
    """Parse the text of a ``.ts`` file (``where`` names it in errors)."""
    header: dict[str, object] = {}
    class_names: list[str] | None = None
    has_labels = False
    lines = text.splitlines()
    data_start = None
    for number, raw_line in enumerate(lines, start=1):
        line = raw_line.strip()
        if not line or line.startswith(_COMMENTS):
            continue
        if not line.startswith("@"):
            raise DataError(f"{where}, line {number}: expected a header line starting with '@' before @data")
        tag, _, rest = line.partition(" ")
        tag = tag.lower()
        rest = rest.strip()
        if tag == "@data":
            data_start = number
            break
        if tag in _BOOLEAN_TAGS:
            header[tag] = _boolean(rest, tag, where, number)
        elif tag in ("@serieslength", "@dimensions"):
            if not rest.isdigit() or int(rest) < 1:
                raise DataError(f"{where}, line {number}: {tag} needs a positive integer, got {rest!r}")
            header[tag] = int(rest)
        elif tag == "@classlabel":
            words = rest.split()
            if not words:
                raise DataError(f"{where}, line {number}: @classLabel needs true or false")
            has_labels = _boolean(words[0], tag, where, number)
            class_names = words[1:] if has_labels else None
            if has_labels and not class_names:
                raise DataError(f"{where}, line {number}: @classLabel true must list the class labels")
            if class_names and len(set(class_names)) != len(class_names):
                repeated = next(name for name in class_names if class_names.count(name) > 1)
                raise DataError(f"{where}, line {number}: @classLabel lists {repeated!r} more than once")
        elif tag == "@targetlabel":
            if _boolean(rest.split()[0] if rest else "", tag, where, number):
                raise DataError(
                    f"{where}, line {number}: @targetLabel true: this is a regression file (a number to predict "
                    "per series), and bilstm trains classifiers",
                    "use a classification file (@classLabel true with class names)",
                )
        elif tag == "@problemname":
            header[tag] = rest
        else:
            raise DataError(f"{where}, line {number}: unknown header {tag!r}")
    if data_start is None:
        raise DataError(f"{where}: no @data line: this is not a .ts file, or its header is incomplete")
    if header.get("@timestamps"):
        raise DataError(f"{where}: @timeStamps true is not supported", "convert the series to plain values")

    sequences, labels = [], []
    dimensions = header.get("@dimensions")
    for number, raw_line in enumerate(lines[data_start:], start=data_start + 1):
        line = raw_line.strip()
        if not line or line.startswith(_COMMENTS):
            continue
        parts = line.split(":")
        if has_labels:
            label = parts.pop().strip()
            if label not in class_names:
                raise DataError(
                    f"{where}, line {number}: label {label!r} is not declared in @classLabel ({' '.join(class_names)})"
                )
            labels.append(class_names.index(label))
        series = [_values(part, where, number, d) for d, part in enumerate(parts)]
        if dimensions is None:
            dimensions = len(series)
        if len(series) != dimensions:
            raise DataError(f"{where}, line {number}: {len(series)} dimensions, expected {dimensions}")
        if len({len(s) for s in series}) > 1:
            raise DataError(
                f"{where}, line {number}: dimensions have different lengths "
                f"({', '.join(str(len(s)) for s in series)}); every dimension of a case needs the same length"
            )
        sequences.append(np.stack(series, axis=1))
    if not sequences:
        raise DataError(f"{where}: no series after @data")
    if header.get("@univariate") and dimensions != 1:
        raise DataError(f"{where}: @univariate true but the data has {dimensions} dimensions")
    x, lengths = pad_sequences(sequences, where)
    if header.get("@equallength") and len(set(lengths.tolist())) > 1:
        raise DataError(f"{where}: @equalLength true but series lengths range from {lengths.min()} to {lengths.max()}")
    y = np.array(labels, dtype=np.int64) if has_labels else None
    return Dataset(x, y, lengths, class_names)


def _boolean(word: str, tag: str, where: str, number: int) -> bool:
    if word.lower() not in ("true", "false"):
        raise DataError(f"{where}, line {number}: {tag} must be true or false, got {word!r}")
    return word.lower() == "true"


def _values(part: str, where: str, number: int, dimension: int) -> np.ndarray:
    tokens = [t.strip() for t in part.split(",")]
    if "?" in tokens:
        raise DataError(
            f"{where}, line {number}: dimension {dimension} has a missing value '?'",
            "impute missing values before training",
        )
    try:
        return np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise DataError(f"{where}, line {number}: dimension {dimension}: {bad!r} is not a number") from None


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
