"""Atomic file writes: a temporary file in the same folder, then a rename.

An interrupted or failed write never leaves a half-written file under the final name, and
never destroys the previous version of that file. The data is flushed to disk before the
rename, and the folder after it: a rename lives in the folder's own entries, so without the
second flush a power cut shortly after the write could bring back the previous file (or none).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    Example:
        >>> with atomic_path("model.keras") as tmp:  # doctest: +SKIP
        ...     model.save(tmp)
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # keep the suffix: some writers (Keras, matplotlib, numpy) choose the format from it
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(handle)
    temporary_path = Path(temporary)
    os.chmod(temporary_path, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; honour the umask
    try:
        yield temporary_path
        _fsync(temporary_path)
        os.replace(temporary_path, target)
        fsync_directory(target.parent)
    finally:
        if temporary_path.exists():
            temporary_path.unlink()


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError), open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def fsync_directory(path: str | Path) -> None:
    """Flush a folder's entries (renames, new files) to disk.

    Best effort: some systems cannot open a folder for reading (Windows) or sync one (some
    network file systems); the rename has happened either way, only its durability differs.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def staging_directory(target: str | Path) -> Path:
    """A new hidden folder beside ``target`` to build it in (then :func:`replace_directory`),
    with the permissions a plain ``mkdir`` gives (``mkdtemp`` makes it owner-only)."""
    target = Path(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(staging, 0o777 & ~_UMASK)
    return staging


def replace_directory(staging: str | Path, target: str | Path) -> None:
    """Put the finished folder ``staging`` under the name ``target`` (same parent folder).

    A previous ``target`` is first renamed aside (hidden, ``.NAME.replaced-*``) and deleted only
    after the new one is in place: at every moment ``target`` is either the old folder or the
    new one, never a half-written or half-deleted one.
    """
    target = Path(target)
    aside = None
    if target.exists():
        aside = target.with_name(f".{target.name}.replaced-{uuid.uuid4().hex[:8]}")
        os.rename(target, aside)
    os.rename(staging, target)
    fsync_directory(target.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
