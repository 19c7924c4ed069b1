"""Labels: raw values (numbers or names) to class codes, and codes of one file to a model's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DataError
from .dataset import Dataset

MAX_LABEL = 65_535  # a larger class number is a typo or an ID column, not a class


def encode_labels(values: Sequence[object], where: str) -> tuple[np.ndarray, list[str] | None]:
    """Turn raw labels into int64 codes.

    Integers (or integer-valued numbers) >= 0 are used as they are. Text labels are mapped
    to ``0..C-1`` in sorted order and the names are returned. Anything else is an error.
    """
    array = np.asarray(values, dtype=object)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64), None
    numeric = np.array([_is_number(v) for v in array.ravel()])
    if numeric.all():
        as_float = np.array([float(v) for v in array.ravel()], dtype=np.float64)
        bad = ~valid_class_numbers(as_float)
        if bad.any():
            first = array.ravel()[int(np.argmax(bad))]
            raise DataError(
                f"{where}: label {first!r} is not a class number (an integer from 0 to {MAX_LABEL})",
                "labels must be class numbers 0, 1, 2, ... or class names",
            )
        return as_float.astype(np.int64).reshape(array.shape), None
    if numeric.any():
        first_number = array.ravel()[int(np.argmax(numeric))]
        first_text = array.ravel()[int(np.argmax(~numeric))]
        raise DataError(
            f"{where}: labels mix numbers ({first_number!r}) and text ({first_text!r})",
            "use class numbers everywhere or class names everywhere",
        )
    names = sorted({str(v) for v in array.ravel()})
    lookup = {name: code for code, name in enumerate(names)}
    codes = np.array([lookup[str(v)] for v in array.ravel()], dtype=np.int64)
    return codes.reshape(array.shape), names


def valid_class_numbers(values: np.ndarray) -> np.ndarray:
    """True where a numeric label is an integer in 0..MAX_LABEL."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values >= 0) & (values <= MAX_LABEL) & (values == np.round(values))


def _is_number(value: object) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, float, np.integer, np.floating)):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def align_labels(dataset: Dataset, classes: list[str] | None, num_classes: int, where: str) -> Dataset:
    """Express a dataset's labels in a trained model's label codes.

    Raises DataError for a label the model never saw in training.
    """
    if dataset.y is None or dataset.y.size == 0:
        return dataset
    used_codes = np.unique(dataset.valid_labels())
    if classes is None:  # the model was trained on class numbers
        if dataset.classes is not None:
            raise DataError(
                f"{where}: labels are names ({', '.join(dataset.classes[:5])}) but the model was "
                "trained on class numbers",
                "give the labels as numbers, as in the training data",
            )
        if used_codes.max() >= num_classes:
            raise DataError(
                f"{where}: label {int(used_codes.max())} was never seen in training "
                f"(the model knows classes 0..{num_classes - 1})"
            )
        return dataset
    # the model was trained on class names; numbers in the file are compared as text
    file_names = dataset.classes or [str(code) for code in range(int(used_codes.max()) + 1)]
    lookup = {name: code for code, name in enumerate(classes)}
    for code in used_codes:
        if file_names[code] not in lookup:
            raise DataError(
                f"{where}: label {file_names[code]!r} was never seen in training (known: {', '.join(classes[:10])})"
            )
    remap = np.array([lookup.get(name, 0) for name in file_names], dtype=np.int64)
    return Dataset(dataset.x, remap[dataset.y], dataset.lengths, list(classes))


def label_values(dataset: Dataset, codes: np.ndarray):
    """Label names where the dataset has them, else the integer codes (for writing files)."""
    return np.asarray(dataset.classes, dtype=object)[codes] if dataset.classes is not None else codes
