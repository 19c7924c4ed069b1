"""Exclusive, process-lifetime locks on files (``flock``): one process owns a run directory.

A lock is an open descriptor with ``flock(LOCK_EX)`` on it; the kernel drops it when the
process ends however it ends (SIGKILL included), so a crashed run never leaves a stale lock.
The holder writes its pid into the file, for the message of the process that is refused.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; directories are then claimed but not locked
    fcntl = None


class Busy(Exception):
    """Another process holds the lock; ``pid`` is what it wrote (None if unknown)."""

    def __init__(self, path: Path, pid: int | None):
        super().__init__(f"{path} is locked by pid {pid}")
        self.path, self.pid = path, pid


def acquire(path: Path, text: str | None = None, create: bool = False, exclusive_create: bool = False) -> int:
    """Open ``path`` and lock it; write ``text`` and our pid into it (unless ``text`` is None:
    a probe, released at once, that only asks whether someone holds it).

    Returns the descriptor that holds the lock (give it to :func:`release`). Waits for the lock
    only after ``exclusive_create``: the file is then ours, and whoever holds it is a probe (or a
    ``--force`` that is taking it away, which the check that follows detects).

    Raises:
        Busy: another process holds the lock, or ``path`` was replaced while we locked it.
        FileExistsError: ``exclusive_create`` and ``path`` exists (someone else created it).
        FileNotFoundError: ``path`` does not exist and ``create`` is false.
    """
    flags = os.O_RDWR | (os.O_CREAT if create or exclusive_create else 0) | (os.O_EXCL if exclusive_create else 0)
    descriptor = os.open(path, flags, 0o666)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if exclusive_create else fcntl.LOCK_NB))
            except BlockingIOError:
                raise Busy(path, holder(path)) from None
        # the file we locked must still be the one under that name (not renamed away meanwhile)
        if not _same_file(path, descriptor):
            raise Busy(path, holder(path))
        if text is not None:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{text}pid {os.getpid()}\n".encode())
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def release(descriptor: int) -> None:
    with contextlib.suppress(OSError):
        os.close(descriptor)


def holder(path: Path) -> int | None:
    """The pid the lock's holder wrote into ``path`` (None if none can be read)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("pid ") and line[4:].strip().isdigit():
            return int(line[4:])
    return None


def _same_file(path: Path, descriptor: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(descriptor).st_ino
    except FileNotFoundError:
        return False
