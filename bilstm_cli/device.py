"""Device selection and seeds.

Device settings must be made before the backend starts its runtime, so commands call
:func:`select_device` before they build a model; :func:`spread_over` then widens the choice
to the first N devices of that kind for data-parallel training (``train.devices``).

``BILSTM_CPU_DEVICES=N`` splits the CPU into N devices (TensorFlow: logical devices; JAX:
host platform devices), so multi-device training can be tried and tested without GPUs.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass, field

from . import backend
from .errors import DeviceError

CPU_DEVICES_VARIABLE = "BILSTM_CPU_DEVICES"
MAX_CPU_DEVICES = 64


@dataclass
class DeviceInfo:
    """The device a command runs on, as recorded in metrics.json."""

    requested: str
    kind: str  # "cpu" or "gpu"
    name: str  # the backend's name for it: "/GPU:0" (TensorFlow), "gpu:0" (JAX)
    description: str  # for people, e.g. "GPU 0 (NVIDIA H200)"
    index: int = 0  # which GPU (or CPU device) of the backend's list
    devices: int = 1  # data-parallel replicas: the first ``devices`` devices of ``kind``
    names: list[str] = field(default_factory=list)  # the backend's name of each device used

    def __post_init__(self) -> None:
        if not self.names:
            self.names = [self.name]

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
    _split_tensorflow_cpu(tf, cpu_device_count())
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
    if threads:
        # Eigen's matrix products on the calling thread. XLA has no flag for the size of its
        # thread pools: they follow the process's CPU affinity, which compare's and tune's
        # workers set (bilstm_cli.cores). Read when JAX starts its runtime (below, on first
        # use), after `import jax` (Keras').
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
    split = cpu_device_count()
    jax = backend.jax()
    if split > 1:
        # JAX is usually imported by now (Keras imports it), but it starts its runtime only on
        # first use; this setting (like XLA_FLAGS=--xla_force_host_platform_device_count) must precede that
        _try(lambda: jax.config.update("jax_num_cpu_devices", split))
    gpus = jax_gpus()
    kind, index = _target(requested, len(gpus), "JAX")
    device = gpus[index] if kind == "gpu" else jax.devices("cpu")[0]
    _try(lambda: jax.config.update("jax_default_device", device))
    if kind == "gpu":
        return DeviceInfo(requested, "gpu", f"gpu:{index}", f"GPU {index} ({device.device_kind})", index)
    return DeviceInfo(requested, "cpu", "cpu:0", f"CPU ({os.cpu_count()} cores)")


def cpu_device_count() -> int:
    """How many devices ``$BILSTM_CPU_DEVICES`` asks the CPU to be split into (1 if unset).

    Raises:
        DeviceError: the value is not a whole number from 1 to MAX_CPU_DEVICES.
    """
    setting = os.environ.get(CPU_DEVICES_VARIABLE, "").strip()
    if not setting:
        return 1
    if not setting.isdigit() or not 1 <= int(setting) <= MAX_CPU_DEVICES:
        raise DeviceError(
            f"{CPU_DEVICES_VARIABLE}={setting}: expected a whole number of CPU devices from 1 to {MAX_CPU_DEVICES}",
            f"e.g. {CPU_DEVICES_VARIABLE}=2 to train with --devices 2 on a CPU",
        )
    return int(setting)


def _split_tensorflow_cpu(tf, count: int) -> None:
    """Split the CPU into ``count`` logical devices (only possible before TensorFlow's runtime starts)."""
    if count > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        _try(lambda: tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count))


def spread_over(device: DeviceInfo, count: int, batch_size: int) -> DeviceInfo:
    """The first ``count`` devices of the selected kind, for data-parallel training.

    Each optimizer step splits its batch of ``batch_size`` sequences evenly across the
    devices. ``count == 1`` returns ``device`` unchanged.

    Args:
        device: what :func:`select_device` chose (its kind decides CPU or GPU devices).
        count: devices to train on (``train.devices``).
        batch_size: sequences per optimizer step, as the data source uses it.

    Raises:
        DeviceError: the batch does not split evenly, ``gpu:K`` with K > 0 was asked for
            together with several devices, or the backend sees fewer than ``count`` devices.
    """
    if count == 1:
        return device
    if batch_size % count:
        raise DeviceError(
            f"--devices {count}: each batch is split evenly across the devices, "
            f"but the batch size {batch_size} is not divisible by {count}",
            f"use a batch size that is a multiple of {count} (--batch-size) or another number of devices",
        )
    if device.index > 0:
        raise DeviceError(
            f"--device {device.requested} picks one GPU, but --devices {count} trains on the first {count} GPUs "
            f"(gpu:0..gpu:{count - 1})",
            "use --device gpu (or auto) with --devices",
        )
    names = _device_names(device.kind, count)
    if len(names) < count:
        raise DeviceError(
            f"--devices {count}: {_backend_title()} sees only {len(names)} {device.kind.upper()} device(s)",
            f"use --devices {len(names)} or fewer"
            + (f"; on a CPU, split it with {CPU_DEVICES_VARIABLE}={count}" if device.kind == "cpu" else ""),
        )
    names = names[:count]
    return DeviceInfo(device.requested, device.kind, names[0], _describe_several(device.kind, count), 0, count, names)


def _describe_several(kind: str, count: int) -> str:
    """For people: ``2 CPU devices (16 cores)``, ``GPUs 0-1 (NVIDIA H200)``."""
    if kind == "cpu":
        return f"{count} CPU devices ({os.cpu_count()} cores)"
    if backend.name() == "jax":
        model = jax_gpus()[0].device_kind
    else:
        tf = backend.tensorflow()
        model = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0]).get("device_name")
    return f"GPUs 0-{count - 1} ({model or 'unknown'})"


def _backend_title() -> str:
    return "JAX" if backend.name() == "jax" else "TensorFlow"


def _device_names(kind: str, count: int) -> list[str]:
    """The backend's names of (at least the first ``count``) devices of a kind."""
    if backend.name() == "jax":
        devices = jax_gpus() if kind == "gpu" else backend.jax().devices("cpu")
        return [f"{kind}:{i}" for i in range(len(devices))]
    tf = backend.tensorflow()
    if kind == "gpu":
        gpus = tf.config.list_physical_devices("GPU")
        # select_device made only the chosen GPU visible: widen that to the first ``count``
        _try(lambda: tf.config.set_visible_devices(gpus[:count], "GPU"))
        for gpu in gpus[:count]:
            _try(lambda gpu=gpu: tf.config.experimental.set_memory_growth(gpu, True))
    return [f"/{kind.upper()}:{i}" for i in range(len(tf.config.list_logical_devices(kind.upper())))]


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


def jax_devices(info: DeviceInfo) -> list:
    """The JAX device objects of every device a run uses (see :func:`spread_over`)."""
    if info.devices == 1:
        return [jax_device(info)]
    return list(jax_gpus() if info.kind == "gpu" else backend.jax().devices("cpu"))[: info.devices]


def _try(action) -> None:
    # TensorFlow refuses device settings once its runtime has started (a second command
    # in the same process, e.g. in tests); the first command's settings then stay.
    with contextlib.suppress(RuntimeError, ValueError):
        action()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and Keras (and its backend): same seed, bit-identical CPU runs."""
    backend.keras.utils.set_random_seed(seed)
