"""Memory caps: the one place that says how much memory an operation may ask for.

Sizes that could only come from a typo are refused before anything is allocated, with a
message that names the size; the engine sizes its compiled calls to stay under a bound.
"""

from __future__ import annotations

GIB = 2**30
MIB = 2**20

# A dataset's batches laid out for training (x, labels, masks), built in memory at once.
MAX_BATCH_BYTES = 4 * GIB
# `bilstm generate`: the sequences of one file, held in memory while they are written.
MAX_GENERATED_BYTES = 8 * GIB
# The arrays fed to one compiled training call (steps x batch x T x F floats, all runs together).
MAX_CALL_BYTES = 64 * MIB
# A dataset file's columns once decoded (Parquet: checked from its metadata before decoding,
# so a small, highly compressed file cannot ask for all the memory there is).
MAX_DECODED_BYTES = 8 * GIB


def default_memory_limit() -> int:
    """``data.memory_limit``'s default: an eighth of the machine's physical memory."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 8
    except (ValueError, OSError, AttributeError):
        return 2 * GIB
