"""Reader for ARFF files as the UEA/UCR archive publishes them (sequence classification).

A small parser: ``scipy.io.arff`` reads the univariate files but not the relational attribute
that holds the multivariate ones. The two shapes of the archive's ``<Name>_TRAIN.arff``::

    % comments
    @relation GunPoint                       univariate: one numeric attribute per step,
    @attribute att0 numeric                  the class (nominal) last
    ...
    @attribute target {1,2}
    @data
    -0.6478854,-0.64199155,...,2

    @relation 'BasicMotions'                 multivariate: a relational attribute with one
    @attribute relationalAtt relational      numeric attribute per step, then the class
    @attribute att0 numeric
    ...
    @end relationalAtt
    @attribute activity {Standing,Running,Walking,Badminton}
    @data
    '0.07,0.07,...\\n0.39,0.39,...',Standing     one dimension per '\\n'-separated row

Unequal-length series are padded to the declared number of steps with ``?``: a run of trailing
``?`` is padding (the series is that much shorter, and every dimension of a case must end at the
same step). A ``?`` followed by values is a missing value, an error naming the line and the
dimension (impute it first, as for ``.ts``). Class labels are the nominal values of the last
attribute, in declared order (as ``@classLabel`` in ``.ts``); a numeric last attribute is a
regression target and is refused, as ``.ts``'s ``@targetLabel``. Sparse rows (``{...}``), string
and date attributes are not supported.
"""

from __future__ import annotations

import numpy as np

from ...errors import DataError
from ..dataset import Dataset, pad_sequences
from .ts import _is_float  # the same number test as .ts

_NUMERIC = ("numeric", "real", "integer")


def read(text: str, where: str) -> Dataset:
    """Parse the text of an ``.arff`` file (``where`` names it in errors)."""
    lines = text.splitlines()
    attributes: list[tuple[str, str, int]] = []  # (name, type, line): the top-level attributes
    inner: list[tuple[str, str, int]] = []  # the relational attribute's own attributes
    relational: str | None = None  # the name of the relational attribute being read
    relational_seen = False
    nominal: dict[str, list[str]] = {}
    data_start = None
    seen_relation = False
    for number, raw_line in enumerate(lines, start=1):
        line = raw_line.strip()
        if not line or line.startswith("%"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.lower()
        if keyword == "@relation":
            seen_relation = True
        elif keyword == "@attribute":
            name, kind = _attribute(rest.strip(), where, number)
            if kind.startswith("{"):
                nominal[name] = _nominal_values(kind, where, number)
                kind = "nominal"
            else:
                kind = kind.lower()
            if relational is not None:
                if kind not in _NUMERIC:
                    raise DataError(
                        f"{where}, line {number}: attribute {name!r} inside relational attribute {relational!r} "
                        f"is {kind}, not numeric",
                        f"the values of a series must be numbers; is an '@end {relational}' line missing before it?",
                    )
                inner.append((name, kind, number))
                continue
            if kind == "relational":
                if relational_seen:
                    raise DataError(f"{where}, line {number}: a second relational attribute ({name!r})")
                relational, relational_seen = name, True
            attributes.append((name, kind, number))
        elif keyword == "@end":
            if relational is None or rest.strip().strip("'\"") != relational:
                raise DataError(f"{where}, line {number}: {line!r} closes no open relational attribute")
            relational = None
        elif keyword == "@data":
            data_start = number
            break
        elif keyword.startswith("@"):
            raise DataError(f"{where}, line {number}: unknown header {keyword!r}")
        else:
            raise DataError(f"{where}, line {number}: expected a header line starting with '@' before @data")
    if not seen_relation or data_start is None:
        missing = "@relation" if not seen_relation else "@data"
        raise DataError(f"{where}: no {missing} line: this is not an ARFF file, or its header is incomplete")
    if relational is not None:
        raise DataError(f"{where}: relational attribute {relational!r} has no '@end {relational}' line")
    if len(attributes) < 2:
        raise DataError(f"{where}: an ARFF dataset needs the series' attributes and a class attribute last")
    class_name, class_kind, class_line = attributes[-1]
    if class_kind != "nominal":
        problem = "a regression target (a number to predict per series)" if class_kind in _NUMERIC else class_kind
        raise DataError(
            f"{where}, line {class_line}: the last attribute {class_name!r} is {problem}, not a class",
            "bilstm trains classifiers: the last attribute must be nominal, e.g. @attribute target {a,b}",
        )
    classes = nominal[class_name]
    features = attributes[:-1]
    multivariate = features[0][1] == "relational"
    if multivariate:
        if len(features) != 1:
            name, kind, number = features[1]
            raise DataError(f"{where}, line {number}: attribute {name!r} beside the relational attribute")
        if not inner:
            raise DataError(f"{where}, line {features[0][2]}: relational attribute {features[0][0]!r} is empty")
        steps = len(inner)
    else:
        for name, kind, number in features:
            if kind not in _NUMERIC:
                raise DataError(
                    f"{where}, line {number}: attribute {name!r} is {kind}, not numeric",
                    "every attribute but the class (the last) holds one step of the series",
                )
        steps = len(features)

    sequences, labels = [], []
    for number, raw_line in enumerate(lines[data_start:], start=data_start + 1):
        line = raw_line.strip()
        if not line or line.startswith("%"):
            continue
        if line.startswith("{"):
            raise DataError(f"{where}, line {number}: sparse ARFF rows ({{...}}) are not supported")
        fields = _split(line, ",", where, number)
        expected = 2 if multivariate else steps + 1
        if len(fields) != expected:
            raise DataError(f"{where}, line {number}: {len(fields)} values, expected {expected}")
        label = _unquote(fields[-1])
        if label not in classes:
            if label == "?":
                raise DataError(f"{where}, line {number}: the class label is missing ('?')")
            raise DataError(
                f"{where}, line {number}: label {label!r} is not declared in {class_name!r} ({', '.join(classes)})"
            )
        labels.append(classes.index(label))
        if multivariate:
            rows = _unquote(fields[0]).replace("\\n", "\n").split("\n")
            dimensions = [_split(row, ",", where, number) for row in rows]
        else:
            dimensions = [fields[:-1]]
        sequences.append(_case(dimensions, steps, where, number))
    if not sequences:
        raise DataError(f"{where}: no data rows after @data")
    x, lengths = pad_sequences(sequences, where)
    return Dataset(x, np.array(labels, dtype=np.int64), lengths, list(classes))


def _case(dimensions: list[list[str]], steps: int, where: str, number: int) -> np.ndarray:
    """One case's ``(length, dimensions)`` array; trailing '?' shared by all dimensions are padding."""
    series = []
    for d, values in enumerate(dimensions):
        if len(values) != steps:
            raise DataError(f"{where}, line {number}: dimension {d} has {len(values)} values, expected {steps}")
        tokens = [v.strip() for v in values]
        length = len(tokens)
        while length and tokens[length - 1] == "?":
            length -= 1
        if "?" in tokens[:length]:
            step = tokens.index("?")
            raise DataError(
                f"{where}, line {number}: dimension {d}, step {step} is a missing value '?' followed by values",
                "impute missing values before training",
            )
        try:
            series.append(np.array([float(t) for t in tokens[:length]], dtype=np.float64))
        except ValueError:
            bad = next(t for t in tokens[:length] if not _is_float(t))
            raise DataError(f"{where}, line {number}: dimension {d}: {bad!r} is not a number") from None
    lengths = [len(s) for s in series]
    if len(set(lengths)) > 1:
        raise DataError(
            f"{where}, line {number}: dimensions have different lengths ({', '.join(map(str, lengths))} values "
            "before the trailing '?'); every dimension of a case needs the same length"
        )
    if lengths[0] == 0:
        raise DataError(f"{where}, line {number}: every value is '?': an empty series")
    values = np.stack(series, axis=1)
    if not np.isfinite(values).all():
        step, d = (int(i) for i in np.argwhere(~np.isfinite(values))[0])
        raise DataError(f"{where}, line {number}: dimension {d}, step {step} is {values[step, d]}, not finite")
    return values


def _attribute(rest: str, where: str, number: int) -> tuple[str, str]:
    """``name type`` of an @attribute line; the name may be quoted."""
    if rest[:1] in ("'", '"'):
        end = rest.find(rest[0], 1)
        if end < 0:
            raise DataError(f"{where}, line {number}: unterminated quote in the attribute name")
        name, kind = rest[1:end], rest[end + 1 :].strip()
    else:
        name, _, kind = rest.partition(" ")
        kind = kind.strip()
        if "\t" in name:
            name, _, kind = rest.partition("\t")
            kind = kind.strip()
    if not name or not kind:
        raise DataError(f"{where}, line {number}: @attribute needs a name and a type")
    return name, kind


def _nominal_values(kind: str, where: str, number: int) -> list[str]:
    if not kind.endswith("}"):
        raise DataError(f"{where}, line {number}: a nominal type needs a closing '}}'")
    values = [_unquote(v) for v in _split(kind[1:-1], ",", where, number)]
    if not values or "" in values:
        raise DataError(f"{where}, line {number}: a nominal type needs values, e.g. {{a,b}}")
    if len(set(values)) != len(values):
        repeated = next(v for v in values if values.count(v) > 1)
        raise DataError(f"{where}, line {number}: the class values list {repeated!r} more than once")
    return values


def _split(text: str, separator: str, where: str, number: int) -> list[str]:
    """Split on ``separator`` outside single or double quotes (the quotes are kept)."""
    if "'" not in text and '"' not in text:
        return [field.strip() for field in text.split(separator)]
    fields, start, i = [], 0, 0
    while i < len(text):
        char = text[i]
        if char in ("'", '"'):
            end = text.find(char, i + 1)
            while end > 0 and text[end - 1] == "\\":  # an escaped quote does not close
                end = text.find(char, end + 1)
            if end < 0:
                raise DataError(f"{where}, line {number}: unterminated quote ({char})")
            i = end + 1
            continue
        if char == separator:
            fields.append(text[start:i].strip())
            start = i + 1
        i += 1
    fields.append(text[start:].strip())
    return fields


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in ("'", '"'):
        return value[1:-1]
    return value
