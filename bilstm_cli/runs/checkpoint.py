"""Checkpoints: weights, optimizer state and metadata in one file, replaced atomically.

With early stopping on, the checkpoint also holds the best weights so far (arrays ``b0000``...;
the best loss and epoch are in the metadata), so a resumed run stops where, and with the
weights, an uninterrupted one would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, UsageError
from ..fileio import atomic
from ..fileio.jsonable import jsonable
from .directory import CHECKPOINT

STATE_PREFIX = "v"  # the current model and optimizer variables
BEST_PREFIX = "b"  # early stopping's best model and optimizer variables


PARTIAL_EPOCH = "partial_epoch"  # the per-step results of an epoch stopped part-way


def save_checkpoint(
    path: Path,
    state: list[np.ndarray],
    meta: dict[str, Any],
    best_state: list[np.ndarray] | None = None,
    partial_epoch: np.ndarray | None = None,
) -> None:
    """Write ``path/checkpoint.npz`` atomically.

    Args:
        path: the run directory.
        state: every model and optimizer variable.
        meta: epoch, seed, history and the like (JSON).
        best_state: early stopping's best variables, if it has seen a best epoch.
        partial_epoch: ``(steps, 3)`` results of the steps trained of the epoch after
            ``meta["epoch"]``, when the checkpoint was taken part-way through it.
    """
    arrays = {f"{STATE_PREFIX}{i:04d}": value for i, value in enumerate(state)}
    arrays.update({f"{BEST_PREFIX}{i:04d}": value for i, value in enumerate(best_state or [])})
    if partial_epoch is not None and len(partial_epoch):
        arrays[PARTIAL_EPOCH] = partial_epoch
    arrays["meta"] = np.frombuffer(json.dumps(jsonable(meta)).encode(), dtype=np.uint8)
    with atomic.atomic_path(path / CHECKPOINT) as temporary:
        np.savez(temporary, **arrays)


def load_checkpoint(path: Path) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The variables and metadata of ``path/checkpoint.npz``."""
    state, meta, _ = load_checkpoint_with_best(path)
    return state, meta


def load_checkpoint_with_best(path: Path) -> tuple[list[np.ndarray], dict[str, Any], list[np.ndarray] | None]:
    """Variables, metadata and early stopping's best variables (None if there are none)."""
    file = path / CHECKPOINT
    if not file.exists():
        raise UsageError(f"{path} has no {CHECKPOINT}: nothing to resume", "was it trained with checkpoints?")
    try:
        with np.load(file, allow_pickle=False) as archive:
            meta = json.loads(archive["meta"].tobytes().decode())
            state = _arrays(archive, STATE_PREFIX)
            best = _arrays(archive, BEST_PREFIX)
    except Exception as exc:  # noqa: BLE001 - numpy/zipfile raise many types
        raise ModelError(f"{file} is unreadable ({type(exc).__name__}): cannot resume") from None
    return state, meta, best or None


def _arrays(archive, prefix: str) -> list[np.ndarray]:
    return [archive[key] for key in sorted(k for k in archive.files if k.startswith(prefix) and k[1:].isdigit())]


def load_partial_epoch(path: Path) -> np.ndarray | None:
    """The per-step results of the epoch the checkpoint stopped part-way through (None: none)."""
    with np.load(path / CHECKPOINT, allow_pickle=False) as archive:
        return archive[PARTIAL_EPOCH] if PARTIAL_EPOCH in archive.files else None
