"""Device selection, TensorFlow start-up settings and seeds.

Everything that must happen before TensorFlow is imported lives here, so commands call
:func:`select_device` first and import Keras after it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import DeviceError

XLA_CACHE_FILES = 200  # compiled programs kept in the persistent cache (about 1.5 MB each)


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
    setting = os.environ.get("BILSTM_XLA_CACHE", "")
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if setting.lower() in ("off", "0", "false", "no") or "tf_xla_persistent_cache_directory" in flags:
        return
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    directory = Path(setting) if setting else cache_home / "bilstm" / "xla"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _prune(directory, XLA_CACHE_FILES)
    except OSError:
        return  # an unusable cache only costs compile time
    os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={directory}".strip()


def _prune(directory: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recently used cache files."""
    files = sorted(directory.glob("*.pb"), key=lambda f: f.stat().st_mtime, reverse=True)
    for stale in files[keep:]:
        stale.unlink(missing_ok=True)


def import_tensorflow():
    """Import TensorFlow with its start-up chatter hidden (unless BILSTM_DEBUG is set).

    Some CUDA-stub messages are written to file descriptor 2 before TensorFlow's log level
    applies, so stderr itself is parked on /dev/null for the import.
    """
    configure_environment()
    if "tensorflow" in sys.modules or os.environ.get("BILSTM_DEBUG"):
        import tensorflow as tf

        return tf
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf


@dataclass
class DeviceInfo:
    """The device a command runs on, as recorded in metrics.json."""

    requested: str
    kind: str  # "cpu" or "gpu"
    name: str  # TensorFlow device string, e.g. "/GPU:0"
    description: str  # for people, e.g. "GPU 0 (NVIDIA H200)"

    def to_dict(self) -> dict:
        return asdict(self)


def select_device(requested: str = "auto", threads: int | None = None) -> DeviceInfo:
    """Make only the requested device visible to TensorFlow and describe it.

    Args:
        requested: ``auto`` (a GPU if there is one), ``cpu``, ``gpu`` or ``gpu:N``.
        threads: CPU threads per op (compare workers use 1 each).

    Raises:
        DeviceError: ``gpu`` was asked for and TensorFlow sees none (exit code 2).
    """
    tf = import_tensorflow()
    if threads:
        _try(lambda: tf.config.threading.set_intra_op_parallelism_threads(threads))
        _try(lambda: tf.config.threading.set_inter_op_parallelism_threads(threads))
    gpus = tf.config.list_physical_devices("GPU")
    target = ("gpu:0" if gpus else "cpu") if requested == "auto" else requested
    if target.startswith("gpu"):
        index = int(target.split(":")[1]) if ":" in target else 0
        if not gpus:
            raise DeviceError(
                f"--device {requested}: TensorFlow sees no GPU on this machine",
                "use --device cpu (or auto); for NVIDIA GPUs install bilstm[gpu] and check nvidia-smi",
            )
        if index >= len(gpus):
            raise DeviceError(f"--device {requested}: only {len(gpus)} GPU(s) visible (gpu:0..gpu:{len(gpus) - 1})")
        _try(lambda: tf.config.set_visible_devices([gpus[index]], "GPU"))
        _try(lambda: tf.config.experimental.set_memory_growth(gpus[index], True))
        details = tf.config.experimental.get_device_details(gpus[index])
        description = f"GPU {index} ({details.get('device_name', 'unknown')})"
        info = DeviceInfo(requested, "gpu", "/GPU:0", description)
    else:
        if gpus:
            _try(lambda: tf.config.set_visible_devices([], "GPU"))
        info = DeviceInfo(requested, "cpu", "/CPU:0", f"CPU ({os.cpu_count()} cores)")
    return info


def _try(action) -> None:
    # TensorFlow refuses device settings once its runtime has started (a second command
    # in the same process, e.g. in tests); the first command's settings then stay.
    with contextlib.suppress(RuntimeError, ValueError):
        action()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and Keras/TensorFlow: same seed, bit-identical CPU runs."""
    import keras

    keras.utils.set_random_seed(seed)


def draw_seed() -> int:
    """A fresh random seed, for runs that were not given one (it is recorded)."""
    import secrets

    return secrets.randbelow(2**31)
