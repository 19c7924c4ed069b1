"""Device selection and seeds.

Device settings must be made before the backend starts its runtime, so commands call
:func:`select_device` before they build a model.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import asdict, dataclass

from . import backend
from .errors import DeviceError


@dataclass
class DeviceInfo:
    """The device a command runs on, as recorded in metrics.json."""

    requested: str
    kind: str  # "cpu" or "gpu"
    name: str  # the backend's name for it: "/GPU:0" (TensorFlow), "gpu:0" (JAX)
    description: str  # for people, e.g. "GPU 0 (NVIDIA H200)"
    index: int = 0  # which GPU (or CPU device) of the backend's list

    def to_dict(self) -> dict:
        return asdict(self)


def select_device(requested: str = "auto", threads: int | None = None) -> DeviceInfo:
    """Make only the requested device visible to the backend and describe it.

    Args:
        requested: ``auto`` (a GPU if there is one), ``cpu``, ``gpu`` or ``gpu:N``.
        threads: CPU threads per op (compare workers use fewer each).

    Raises:
        DeviceError: ``gpu`` was asked for and the backend sees none (exit code 2).
    """
    if backend.name() == "jax":
        return _select_jax(requested, threads)
    return _select_tensorflow(requested, threads)


def _target(requested: str, gpu_count: int, who: str) -> tuple[str, int]:
    """("cpu" | "gpu", index) for a request, checked against the GPUs the backend sees."""
    target = ("gpu:0" if gpu_count else "cpu") if requested == "auto" else requested
    if not target.startswith("gpu"):
        return "cpu", 0
    index = int(target.split(":")[1]) if ":" in target else 0
    if not gpu_count:
        raise DeviceError(
            f"--device {requested}: {who} sees no GPU on this machine",
            "use --device cpu (or auto); for NVIDIA GPUs install bilstm[gpu] and check nvidia-smi",
        )
    if index >= gpu_count:
        raise DeviceError(f"--device {requested}: only {gpu_count} GPU(s) visible (gpu:0..gpu:{gpu_count - 1})")
    return "gpu", index


def _select_tensorflow(requested: str, threads: int | None) -> DeviceInfo:
    tf = backend.tensorflow()
    if threads:
        _try(lambda: tf.config.threading.set_intra_op_parallelism_threads(threads))
        _try(lambda: tf.config.threading.set_inter_op_parallelism_threads(threads))
    gpus = tf.config.list_physical_devices("GPU")
    kind, index = _target(requested, len(gpus), "TensorFlow")
    if kind == "gpu":
        _try(lambda: tf.config.set_visible_devices([gpus[index]], "GPU"))
        _try(lambda: tf.config.experimental.set_memory_growth(gpus[index], True))
        details = tf.config.experimental.get_device_details(gpus[index])
        return DeviceInfo(requested, "gpu", "/GPU:0", f"GPU {index} ({details.get('device_name', 'unknown')})", index)
    if gpus:
        _try(lambda: tf.config.set_visible_devices([], "GPU"))
    return DeviceInfo(requested, "cpu", "/CPU:0", f"CPU ({os.cpu_count()} cores)")


def _select_jax(requested: str, threads: int | None) -> DeviceInfo:
    if requested == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")  # before JAX starts: skip probing for GPUs
    if threads and "jax" not in sys.modules:
        # one XLA thread pool per process: compare's workers share the cores
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads={threads}"
    jax = backend.jax()
    gpus = jax_gpus()
    kind, index = _target(requested, len(gpus), "JAX")
    device = gpus[index] if kind == "gpu" else jax.devices("cpu")[0]
    _try(lambda: jax.config.update("jax_default_device", device))
    if kind == "gpu":
        return DeviceInfo(requested, "gpu", f"gpu:{index}", f"GPU {index} ({device.device_kind})", index)
    return DeviceInfo(requested, "cpu", "cpu:0", f"CPU ({os.cpu_count()} cores)")


def jax_gpus() -> list:
    """The GPUs JAX sees (none when it has no GPU platform)."""
    try:
        return list(backend.jax().devices("gpu"))
    except RuntimeError:  # "Unknown backend: 'gpu' requested, but no platforms that are instances of gpu"
        return []


def jax_device(info: DeviceInfo):
    """The JAX device object for a selected device."""
    jax = backend.jax()
    return jax_gpus()[info.index] if info.kind == "gpu" else jax.devices("cpu")[0]


def _try(action) -> None:
    # TensorFlow refuses device settings once its runtime has started (a second command
    # in the same process, e.g. in tests); the first command's settings then stay.
    with contextlib.suppress(RuntimeError, ValueError):
        action()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and Keras (and its backend): same seed, bit-identical CPU runs."""
    backend.keras.utils.set_random_seed(seed)


def draw_seed() -> int:
    """A fresh random seed, for runs that were not given one (it is recorded)."""
    import secrets

    return secrets.randbelow(2**31)
