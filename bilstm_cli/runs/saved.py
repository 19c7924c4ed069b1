"""Reading a finished run back: its model file, config and data description."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.resolve import resolve_config
from ..config.schema import Config
from ..errors import ModelError, UsageError
from .directory import CHECKPOINT, CONFIG, DATA_SPEC, MODEL


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
        config = resolve_config(directory / CONFIG)
    spec: dict[str, Any] = {}
    if (directory / DATA_SPEC).exists():
        try:
            spec = json.loads((directory / DATA_SPEC).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"{directory / DATA_SPEC} is unreadable: {exc}") from None
    return SavedRun(model_path, directory if config or spec else None, config, spec)
