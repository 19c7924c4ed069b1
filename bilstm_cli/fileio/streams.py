"""File-descriptor plumbing: hiding native libraries' chatter, and a stdout whose reader left."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 on /dev/null for a block (unless BILSTM_DEBUG is set).

    Native libraries (TensorFlow's CUDA stubs before its log level applies, Ray's connection
    warnings) write to the file descriptor itself, past Python's ``sys.stderr``.
    """
    if os.environ.get("BILSTM_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def silence_stdout() -> None:
    """Point stdout at /dev/null for good: its reader went away (``| head``), and Python's
    final flush would otherwise fail once more at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
