"""Seeds that nobody gave: drawn once, then recorded, so every run can be repeated."""

from __future__ import annotations

import secrets

MAX_DRAWN_SEED = 2**31


def draw_seed() -> int:
    """A fresh random seed, for runs that were not given one (the caller records it)."""
    return secrets.randbelow(MAX_DRAWN_SEED)
