"""Run directories: creating them safely, writing their files atomically, reading them back.

A run directory holds everything needed to reproduce or reuse a run::

    config.yaml      resolved config (re-runnable with --config)
    model.keras      the trained model
    data.json        what the model expects: task, features, classes (label names)
    history.csv      every epoch: loss, accuracy, val_loss, val_accuracy, elapsed
    metrics.json     final metrics, seed, device, versions, timings
    history.png      loss and accuracy curves
    checkpoint.npz   weights, optimizer state, epoch and history, for --resume
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from ..config.resolve import resolve_config
from ..config.schema import Config, OutputConfig
from ..errors import UsageError
from . import atomic

CONFIG = "config.yaml"
MODEL = "model.keras"
DATA_SPEC = "data.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
PLOT = "history.png"
CHECKPOINT = "checkpoint.npz"
MARKER = ".bilstm-run"  # written when bilstm creates a directory: what --force may replace


def run_directory(output: OutputConfig, tag: str, explicit: str | None = None) -> Path:
    """Where a new run goes: ``explicit`` if given, else ``root/name`` (default: timestamp + tag)."""
    if explicit:
        return Path(explicit)
    name = output.name or f"{time.strftime('%Y%m%d-%H%M%S')}-{tag}"
    return Path(output.root) / name


def prepare_run_directory(path: Path, overwrite: bool) -> Path:
    """Create ``path`` for a new run; refuse an existing one unless ``overwrite``.

    ``overwrite`` only ever deletes a directory that bilstm created (it holds the marker file
    ``.bilstm-run``), never an unrelated folder that happens to have the same name.
    """
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} exists and is a file, not a run directory")
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise UsageError(
                f"run directory {path} already exists",
                "pass --force to replace it, --name or --out to choose another, or --resume to continue it",
            )
        if not (path / MARKER).exists():
            raise UsageError(f"{path} is not empty and was not made by bilstm; refusing to replace it")
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / MARKER).write_text("made by bilstm; `--force` may replace this directory\n")
    except OSError as exc:
        raise UsageError(f"cannot write to {path}: {exc.strerror}", "choose a writable folder with --out") from None
    return path


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
