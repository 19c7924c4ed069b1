"""Checkpoints: weights, optimizer state and metadata in one file, replaced atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, UsageError
from ..jsonable import jsonable
from . import atomic
from .directory import CHECKPOINT


def save_checkpoint(path: Path, state: list[np.ndarray], meta: dict[str, Any]) -> None:
    """One file holding weights, optimizer state and metadata, replaced atomically."""
    arrays = {f"v{i:04d}": value for i, value in enumerate(state)}
    arrays["meta"] = np.frombuffer(json.dumps(jsonable(meta)).encode(), dtype=np.uint8)
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
