"""Device selection and seeds.

Device settings must be made before the backend starts its runtime, so commands call
:func:`select_device` before they build a model.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass

from . import backend
from .errors import DeviceError


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
    tf = backend.tensorflow()
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
    backend.keras.utils.set_random_seed(seed)


def draw_seed() -> int:
    """A fresh random seed, for runs that were not given one (it is recorded)."""
    import secrets

    return secrets.randbelow(2**31)
