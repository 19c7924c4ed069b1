"""Training: the epoch loop (backend-neutral), the compiled multi-step call of each backend,
and the session that ties a config's model, data and engine together.

Each backend module (``tensorflow``, ``jax``) offers the same small interface:
``TrainingEngine``, ``use_xla``, ``placed(device)`` (a context that creates variables on the
device) and ``predictor(model, device)``; :func:`for_backend` returns the selected one.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .. import backend


def for_backend() -> ModuleType:
    """The engine module of the selected backend."""
    return importlib.import_module(f"{__name__}.{backend.name()}")
