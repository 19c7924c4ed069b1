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

import csv
import io
import json
import math
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import atomic
from .config import Config, OutputConfig
from .errors import ModelError, UsageError

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


def write_json(path: Path, data: Any) -> None:
    atomic.write_text(path, json.dumps(_plain(data), indent=2, allow_nan=False) + "\n")


def _plain(value: Any) -> Any:
    """JSON-safe values: numpy scalars to Python, NaN/inf to null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    return value


def write_csv(path: Path, header: tuple[str, ...] | list[str], rows: list[tuple]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if isinstance(v, float) and math.isnan(v) else _short(v) for v in row])
    atomic.write_text(path, buffer.getvalue())


def _short(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def save_config(path: Path, config: Config) -> None:
    atomic.write_text(path / CONFIG, config.to_yaml())


def save_model(path: Path, model) -> None:
    with atomic.atomic_path(path / MODEL) as temporary:
        model.save(temporary)


# ---------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, state: list[np.ndarray], meta: dict[str, Any]) -> None:
    """One file holding weights, optimizer state and metadata, replaced atomically."""
    arrays = {f"v{i:04d}": value for i, value in enumerate(state)}
    arrays["meta"] = np.frombuffer(json.dumps(_plain(meta)).encode(), dtype=np.uint8)
    with atomic.atomic_path(path / CHECKPOINT) as temporary:
        np.savez(temporary, **arrays)


def load_checkpoint(path: Path) -> tuple[list[np.ndarray], dict[str, Any]]:
    file = path / CHECKPOINT
    if not file.exists():
        raise UsageError(f"{path} has no {CHECKPOINT}: nothing to resume", "was it trained with checkpoints?")
    try:
        with np.load(file, allow_pickle=False) as archive:
            meta = json.loads(archive["meta"].tobytes().decode())
            state = [archive[key] for key in sorted(k for k in archive.files if k.startswith("v"))]
    except Exception as exc:  # noqa: BLE001 - numpy/zipfile raise many types
        raise ModelError(f"{file} is unreadable ({type(exc).__name__}): cannot resume") from None
    return state, meta


# ---------------------------------------------------------------------------- reading runs


@dataclass
class SavedRun:
    """A trained model and what is known about the data it expects."""

    model_path: Path
    directory: Path | None
    config: Config | None
    data_spec: dict[str, Any]


def locate_run(target: str) -> SavedRun:
    """Accept a run directory or a ``.keras`` file (its folder is read for config and data.json)."""
    path = Path(target)
    if not path.exists():
        raise UsageError(f"no run directory or model file at {target}")
    if path.is_dir():
        model_path = path / MODEL
        if not model_path.exists():
            hint = (
                "the run may have been interrupted; resume it with bilstm train --resume"
                if (path / CHECKPOINT).exists()
                else "give a run directory made by bilstm train, or a .keras file"
            )
            raise ModelError(f"{target} has no {MODEL}", hint)
        directory = path
    else:
        if path.suffix != ".keras":
            raise ModelError(f"{target} is not a model: expected a run directory or a .keras file")
        model_path, directory = path, path.parent
    if not zipfile.is_zipfile(model_path):  # a .keras file is a zip archive: cheap to check before TensorFlow
        raise ModelError(f"{model_path} is not a loadable Keras model (not a .keras archive)")
    config = None
    if (directory / CONFIG).exists():
        from .config import resolve_config

        config = resolve_config(directory / CONFIG)
    spec: dict[str, Any] = {}
    if (directory / DATA_SPEC).exists():
        try:
            spec = json.loads((directory / DATA_SPEC).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"{directory / DATA_SPEC} is unreadable: {exc}") from None
    return SavedRun(model_path, directory if config or spec else None, config, spec)
