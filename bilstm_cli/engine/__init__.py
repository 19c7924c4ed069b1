"""Training: the stacked network of a program's runs (backend-neutral), the engine contract
and its two backends, the epoch loop, and the session that ties configs, data and engine.

Each backend module (``tensorflow``, ``jax``) offers the same small interface, read by the
session: ``OFFER`` (a :class:`~bilstm_cli.engine.base.BackendOffer`: what the backend can do),
``engine_class(devices)`` (its :class:`~bilstm_cli.engine.base.Engine` subclass), ``use_xla``,
``time_loop`` (the recurrence's loop), ``placed(device)`` (a context that creates variables on
the device) and ``predictor(model, device)``; :func:`for_backend` returns the selected one.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .. import backend


def for_backend() -> ModuleType:
    """The engine module of the selected backend."""
    return importlib.import_module(f"{__name__}.{backend.name()}")
