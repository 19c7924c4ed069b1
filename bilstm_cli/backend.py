"""The gateway to the numerical backend: the only module that chooses, configures and imports it.

Keras 3 runs on TensorFlow (the default) or JAX. Which one, and some settings, must be fixed
before the first import (``KERAS_BACKEND``, TensorFlow's log level, the compilation caches,
JAX's platforms), so no other module imports ``keras``, ``tensorflow`` or ``jax`` directly:

    backend.select("jax")               # once per process, before anything below
    from ..backend import keras, ops    # configured and imported on first access
    jax = backend.jax()

Commands that never touch a model (``--help``, ``config``, ``generate``) never import it.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

from .config.vocabulary import BACKENDS, DEFAULT_BACKEND
from .errors import UsageError
from .fileio.streams import quiet_stderr

ENVIRONMENT_VARIABLE = "BILSTM_BACKEND"
CACHE_FILES = 200  # compiled programs kept in each persistent cache (about 1.5 MB each)

_loaded: dict[str, ModuleType] = {}
_selected: str | None = None


def select(requested: str | None = None) -> str:
    """Choose this process's backend: ``requested``, else ``$BILSTM_BACKEND``, else TensorFlow.

    Raises:
        UsageError: an unknown name, or another backend was already imported in this process.
    """
    global _selected
    name = requested or os.environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_BACKEND
    source = "--backend" if requested else ENVIRONMENT_VARIABLE if os.environ.get(ENVIRONMENT_VARIABLE) else "default"
    if name not in BACKENDS:
        raise UsageError(f"{source}: unknown backend {name!r}", f"choose one of {', '.join(BACKENDS)}")
    if _selected is not None and _selected != name and "keras" in _loaded:
        raise UsageError(
            f"the {_selected} backend is already loaded in this process; cannot switch to {name}",
            "run the command in a new process",
        )
    _selected = name
    # child processes (compare's workers) import Keras before they read their config: they
    # must inherit the choice, or they would load the default backend first
    os.environ[ENVIRONMENT_VARIABLE] = name
    return name


def name() -> str:
    """The selected backend (selecting the default if nothing was chosen yet)."""
    return _selected or select()


def version() -> str:
    """The selected backend's version, e.g. ``2.21.0`` for TensorFlow."""
    module = tensorflow() if name() == "tensorflow" else jax()
    return str(module.__version__)


def versions() -> dict[str, str]:
    """The versions a result was computed with (metrics.json records them, and compare's
    driver refuses workers whose versions differ): bilstm, the backend, Keras, NumPy, Python."""
    import platform

    import numpy as np

    from . import __version__

    return {
        "bilstm": __version__,
        name(): version(),
        "keras": str(_keras().__version__),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------------------- environment


def configure_environment() -> None:
    """Settings that must precede the first import: quiet native logs (unless BILSTM_DEBUG is
    set), the Keras backend, and TensorFlow's persistent XLA compilation cache.

    The caches keep compiled training loops between runs, keyed by the compiled program, so
    rerunning the same architecture skips most of the compile time and a changed model or
    library version simply compiles afresh. ``BILSTM_XLA_CACHE=off`` disables them,
    ``BILSTM_XLA_CACHE=DIR`` moves them (default ``~/.cache/bilstm/``).
    """
    debug = bool(os.environ.get("BILSTM_DEBUG"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if debug else "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "0" if debug else "3")
    os.environ["KERAS_BACKEND"] = name()
    if name() != "tensorflow":
        return
    directory = compile_cache_directory("xla")
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if directory is None or "tf_xla_persistent_cache_directory" in flags:
        return
    os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={directory}".strip()


def compile_cache_directory(kind: str) -> Path | None:
    """A usable persistent compile-cache folder, or None when disabled or not writable."""
    setting = os.environ.get("BILSTM_XLA_CACHE", "")
    if setting.lower() in ("off", "0", "false", "no"):
        return None
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    directory = Path(setting) / kind if setting else cache_home / "bilstm" / kind
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _prune(directory, CACHE_FILES)
    except OSError:
        return None  # an unusable cache only costs compile time
    return directory


def _prune(directory: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recently used cache files."""
    files = sorted((f for f in directory.iterdir() if f.is_file()), key=lambda f: f.stat().st_mtime, reverse=True)
    for stale in files[keep:]:
        stale.unlink(missing_ok=True)


def _quiet_import(module: str) -> ModuleType:
    """Import a module with its native start-up chatter hidden (see :func:`quiet_stderr`)."""
    if module in sys.modules:
        return importlib.import_module(module)
    with quiet_stderr():
        return importlib.import_module(module)


# ---------------------------------------------------------------------------- modules


def tensorflow() -> ModuleType:
    """The configured ``tensorflow`` module (also usable beside JAX, e.g. for SavedModel export)."""
    if "tensorflow" not in _loaded:
        configure_environment()
        _loaded["tensorflow"] = _quiet_import("tensorflow")
        if "keras" in _loaded and name() != "tensorflow":
            from keras.src.utils import module_utils

            module_utils.tensorflow._available = None  # asked for on purpose: let Keras see it again
    return _loaded["tensorflow"]


def jax() -> ModuleType:
    """The configured ``jax`` module (persistent compilation cache on)."""
    if "jax" not in _loaded:
        configure_environment()
        try:
            module = _quiet_import("jax")
        except ImportError:
            raise UsageError(
                "the jax backend needs JAX, which is not installed",
                'install it with: pip install "bilstm[jax]"',
            ) from None
        directory = compile_cache_directory("jax")
        if directory is not None:
            module.config.update("jax_compilation_cache_dir", str(directory))
            # every program, however small: the model's initialisers are small compiled programs
            # too, and a second start of the tutorial run drops from about 5 s to under 3 s
            module.config.update("jax_persistent_cache_min_compile_time_secs", 0)
            module.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
        _loaded["jax"] = module
    return _loaded["jax"]


def _keras() -> ModuleType:
    if "keras" not in _loaded:
        # Keras imports its backend: configure and import that first
        tensorflow() if name() == "tensorflow" else jax()
        _loaded["keras"] = _quiet_import("keras")
        if name() != "tensorflow":
            _hide_tensorflow_from_keras()
    return _loaded["keras"]


def _hide_tensorflow_from_keras() -> None:
    """Keep Keras-on-JAX from importing TensorFlow (3-6 s) when TensorFlow is installed too.

    Keras asks "is TensorFlow available?" in a few places that JAX runs do not need (seeding
    TensorFlow's RNG in ``set_random_seed``, serialising ``Bidirectional``); answering no saves
    the import. Training, saving and loading do not use TensorFlow under JAX. Exporting a
    SavedModel does; :func:`tensorflow` re-enables it.
    """
    try:
        from keras.src.utils import module_utils

        module_utils.tensorflow._available = False
    except (ImportError, AttributeError):  # a Keras without this switch: TensorFlow is just imported
        pass


def __getattr__(attribute: str):
    # ``from bilstm_cli.backend import keras`` imports Keras lazily, after the settings above
    if attribute == "keras":
        return _keras()
    if attribute == "ops":
        return _keras().ops
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
