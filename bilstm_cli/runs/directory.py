"""Run directories: creating them safely, writing their files atomically, reading them back.

A run directory holds everything needed to reproduce or reuse a run::

    config.yaml      resolved config (re-runnable with --config)
    model.keras      the trained model
    data.json        what the model expects: task, features, classes (label names)
    history.csv      every epoch: loss, accuracy, val_loss, val_accuracy, elapsed
    metrics.json     final metrics, seed, device, versions, timings
    history.png      loss and accuracy curves
    checkpoint.npz   weights, optimizer state, epoch and history, for --resume
    tensorboard/     TensorBoard event files (unless output.tensorboard is false)
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, NoReturn

from ..config.resolve import resolve_config
from ..config.schema import Config, OutputConfig
from ..errors import UsageError
from ..fileio import atomic, lock

CONFIG = "config.yaml"
MODEL = "model.keras"
DATA_SPEC = "data.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
PLOT = "history.png"
CHECKPOINT = "checkpoint.npz"
TENSORBOARD = "tensorboard"
# a comparison's directory (bilstm compare): its runs' configs, and its summary once finished
COMPARISON_CONFIGS = "configs"
COMPARISON_SUMMARY = "summary.json"
MARKER = ".bilstm-run"  # written when bilstm creates a directory: what --force may replace; also its lock
MARKER_TEXT = "made by bilstm; `--force` may replace this directory\n"

_held: dict[Path, int] = {}  # run directories this process holds: directory -> locked descriptor


def run_directory(output: OutputConfig, tag: str, explicit: str | None = None) -> Path:
    """Where a new run goes: ``explicit`` if given, else ``root/name`` (default: timestamp + tag)."""
    if explicit:
        return Path(explicit)
    name = output.name or f"{time.strftime('%Y%m%d-%H%M%S')}-{tag}"
    return Path(output.root) / name


def prepare_run_directory(path: Path, overwrite: bool) -> Path:
    """Claim ``path`` for a new run and hold it (locked) until :func:`release_run_directories`
    or the end of the process; refuse an existing one unless ``overwrite``.

    The claim is the exclusive creation of the marker file ``.bilstm-run`` (``O_CREAT |
    O_EXCL``): of several processes given the same directory at the same moment exactly one
    creates it and the others are refused. (Checking first and creating after would let
    both through.) The marker is also the directory's lock (``flock``), held for the run's
    whole life: ``overwrite`` refuses a directory another process is still running in, and
    only ever deletes a directory that bilstm created (it holds the marker), never an
    unrelated folder that happens to have the same name.

    Args:
        path: the run directory; its parents are created as needed.
        overwrite: replace a previous run in ``path`` (``--force``).

    Raises:
        UsageError: ``path`` is a file, holds another run (or was claimed a moment ago by
            another process), is in use by another process, holds files bilstm did not make,
            or cannot be written.
    """
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} exists and is a file, not a run directory")
    if overwrite and (path / MARKER).exists():
        previous = _lock(path, create=False)  # refused while another process runs in it
        try:
            _delete_previous_run(path)
        finally:
            lock.release(previous)
    elif _holds_files(path):  # refused without writing into it (checked again after the claim)
        _refuse_existing(path, overwrite)
    try:
        path.mkdir(parents=True, exist_ok=True)
        descriptor = lock.acquire(path / MARKER, MARKER_TEXT, exclusive_create=True)
    except FileExistsError:
        descriptor = None
    except lock.Busy as busy:  # claimed and immediately taken by a --force elsewhere
        raise _in_use(path, busy.pid) from None
    except OSError as exc:
        raise UsageError(f"cannot write to {path}: {exc.strerror}", "choose a writable folder with --out") from None
    if descriptor is not None and not [entry for entry in os.listdir(path) if entry != MARKER]:
        _held[path] = descriptor
        return path
    if descriptor is not None:  # files appeared between the check and the claim: give the folder back
        (path / MARKER).unlink()
        lock.release(descriptor)
    _refuse_existing(path, overwrite)


def hold_run_directory(path: Path) -> None:
    """Lock an existing run directory (``--resume``) for this process's lifetime, or refuse
    (exit 2) when another process holds it."""
    if path in _held:
        return
    if not path.is_dir():
        raise UsageError(f"no run directory at {path}")
    _held[path] = _lock(path, create=True)


def check_not_in_use(path: Path) -> None:
    """Refuse (exit 2) at once, before anything slow, if another process holds ``path``."""
    if path in _held or not (path / MARKER).exists():
        return
    try:
        lock.release(lock.acquire(path / MARKER))  # a probe: released at once, writes nothing
    except lock.Busy as busy:
        raise _in_use(path, busy.pid) from None
    except OSError:
        return  # gone or unreadable meanwhile: the claim that follows decides


def release_run_directories() -> None:
    """Unlock every run directory this process holds (the end of a command)."""
    while _held:
        lock.release(_held.popitem()[1])


def _lock(path: Path, create: bool) -> int:
    try:
        return lock.acquire(path / MARKER, MARKER_TEXT, create=create)
    except lock.Busy as busy:
        raise _in_use(path, busy.pid) from None
    except FileNotFoundError:
        if create:
            raise
        raise UsageError(f"{path} was replaced by another process meanwhile; try again") from None
    except OSError as exc:
        raise UsageError(f"cannot lock {path}: {exc.strerror}") from None


def _in_use(path: Path, pid: int | None) -> UsageError:
    holder = f"pid {pid}" if pid else "another process"
    return UsageError(
        f"run directory {path} is in use by another bilstm process ({holder})",
        "wait for it to finish or stop it, or choose another directory with --out",
    )


def _holds_files(path: Path) -> bool:
    return path.is_dir() and any(True for _ in path.iterdir())


def _refuse_existing(path: Path, overwrite: bool) -> NoReturn:
    if overwrite and not (path / MARKER).exists():
        raise UsageError(f"{path} is not empty and was not made by bilstm; refusing to replace it")
    if _busy(path):
        pid = lock.holder(path / MARKER)
        raise UsageError(
            f"run directory {path} already exists and is in use by another bilstm process "
            f"({f'pid {pid}' if pid else 'starting'})",
            "wait for it to finish or stop it, or choose another directory with --out or --name",
        )
    raise UsageError(
        f"run directory {path} already exists",
        "pass --force to replace it, --name or --out to choose another, or --resume to continue it",
    )


def _busy(path: Path) -> bool:
    try:
        check_not_in_use(path)
    except UsageError:
        return True
    return False


def _delete_previous_run(path: Path) -> None:
    """Move a previous run out of the way in one rename, then delete it.

    After the rename the name is free, so the claim that follows races fairly with any
    other process, and an interruption while deleting leaves no half-deleted run under the
    run's name (only a hidden ``.NAME.replaced-*`` folder beside it).
    """
    aside = path.with_name(f".{path.name}.replaced-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:  # another process set it aside first; the claim decides who runs
        return
    except OSError as exc:
        raise UsageError(f"cannot replace {path}: {exc.strerror}") from None
    shutil.rmtree(aside, ignore_errors=True)


def save_config(path: Path, config: Config) -> None:
    atomic.write_text(path / CONFIG, config.to_yaml())


def save_model(path: Path, model) -> None:
    with atomic.atomic_path(path / MODEL) as temporary:
        model.save(temporary)


def load_saved_config(path: str | Path, overrides: dict[str, Any]) -> Config:
    """The saved config of the run or comparison in ``path``, for ``--resume``, with the
    run-time settings in ``overrides`` (device, workers) that do not change results."""
    saved = Path(path) / CONFIG
    if not saved.exists():
        raise UsageError(f"{path} has no {CONFIG}: nothing to resume", "give a directory made by bilstm")
    return resolve_config(saved, (), overrides)
