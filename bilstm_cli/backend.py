"""The gateway to the numerical backend: the only module that configures and imports it.

Some settings only work if they are in place before the first import (TensorFlow's log level,
the XLA compilation cache, which backend Keras uses), so no other module imports ``keras`` or
``tensorflow`` directly. They go through this gateway, which applies the settings on first use:

    from ..backend import keras, ops     # configured and imported on first access
    tf = backend.tensorflow()

Commands that never touch a model (``--help``, ``config``, ``generate``) never import it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

BACKENDS = ("tensorflow",)
DEFAULT_BACKEND = "tensorflow"
XLA_CACHE_FILES = 200  # compiled programs kept in the persistent cache (about 1.5 MB each)

_loaded: dict[str, ModuleType] = {}


def configure_environment() -> None:
    """Settings that must precede the TensorFlow import: quiet C++ logs (unless
    BILSTM_DEBUG is set) and a persistent XLA compilation cache.

    The cache keeps compiled training loops between runs, keyed by the compiled program, so
    rerunning the same architecture skips most of the XLA compile time and a changed model
    or TensorFlow version simply compiles afresh. ``BILSTM_XLA_CACHE=off`` disables it,
    ``BILSTM_XLA_CACHE=DIR`` moves it (default ``~/.cache/bilstm/xla``).
    """
    debug = bool(os.environ.get("BILSTM_DEBUG"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if debug else "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "0" if debug else "3")
    os.environ.setdefault("KERAS_BACKEND", DEFAULT_BACKEND)
    directory = compile_cache_directory("xla")
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if directory is None or "tf_xla_persistent_cache_directory" in flags:
        return
    os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={directory}".strip()


def compile_cache_directory(name: str) -> Path | None:
    """A usable persistent compile-cache folder, or None when disabled or not writable."""
    setting = os.environ.get("BILSTM_XLA_CACHE", "")
    if setting.lower() in ("off", "0", "false", "no"):
        return None
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    directory = Path(setting) / name if setting else cache_home / "bilstm" / name
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _prune(directory, XLA_CACHE_FILES)
    except OSError:
        return None  # an unusable cache only costs compile time
    return directory


def _prune(directory: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recently used cache files."""
    files = sorted((f for f in directory.iterdir() if f.is_file()), key=lambda f: f.stat().st_mtime, reverse=True)
    for stale in files[keep:]:
        stale.unlink(missing_ok=True)


def _quiet_import(name: str) -> ModuleType:
    """Import a module with native start-up chatter hidden (unless BILSTM_DEBUG is set).

    Some CUDA-stub messages are written to file descriptor 2 before TensorFlow's log level
    applies, so stderr itself is parked on /dev/null for the import.
    """
    import importlib

    if name in sys.modules or os.environ.get("BILSTM_DEBUG"):
        return importlib.import_module(name)
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        return importlib.import_module(name)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def tensorflow() -> ModuleType:
    """The configured ``tensorflow`` module."""
    if "tensorflow" not in _loaded:
        configure_environment()
        _loaded["tensorflow"] = _quiet_import("tensorflow")
    return _loaded["tensorflow"]


def _keras() -> ModuleType:
    if "keras" not in _loaded:
        tensorflow()  # Keras imports its backend: configure and import it first
        _loaded["keras"] = _quiet_import("keras")
    return _loaded["keras"]


def __getattr__(name: str):
    # ``from bilstm_cli.backend import keras`` imports Keras lazily, after the settings above
    if name == "keras":
        return _keras()
    if name == "ops":
        return _keras().ops
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
