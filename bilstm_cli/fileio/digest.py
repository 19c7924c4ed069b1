"""Fingerprints of data: one hash function for everything the project fingerprints."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np


def fingerprint(parts: Iterable[np.ndarray | bytes | str]) -> str:
    """SHA-256 (hex) of arrays (their bytes in C order), byte strings and texts, in order.

    Example:
        >>> fingerprint([np.arange(3, dtype="<i8"), "a"])[:12]
        'c828a6112395'
    """
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            part = part.encode()
        elif isinstance(part, np.ndarray):
            part = np.ascontiguousarray(part).tobytes()
        digest.update(part)
    return digest.hexdigest()
