"""``bilstm export``: a trained model as a TensorFlow SavedModel or an ONNX file, for serving.

Export always runs on TensorFlow (a base dependency), whichever backend trained the model: a
model.keras loads unchanged on either backend, and the result is then a plain TensorFlow graph,
which TF Serving, TFLite's converter and tf2onnx all take. (Keras' own export on JAX embeds XLA
modules compiled for named platforms, and JAX's ONNX converter, jax2onnx, cannot convert the
reversed scans of backward LSTMs.)

Both formats take ``x`` float32 ``(batch, steps, features)`` and ``lengths`` int32 ``(batch,)``
and return ``probabilities``: ``(batch, steps, 1|C)`` per step, ``(batch, 1|C)`` per sequence
(width 1: the probability of class 1). Standardisation and the length mask are inside the graph.
What else ``predict`` knows (task, class names, feature count) is written beside the model:
``PATH/bilstm.json`` in a SavedModel directory, ``PATH.json`` beside an ONNX file (and in the
ONNX file's own metadata, key ``bilstm``).

Nothing is kept unchecked: before it replaces anything, the export runs on random
variable-length sequences and must agree with the Keras model within ``TOLERANCE`` (tf2onnx is
known to write broken files without a word for some graphs).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, backend
from ..config.vocabulary import EXPORT_FORMATS
from ..data.dataset import PER_STEP
from ..device import select_device
from ..errors import ModelError, UsageError
from ..fileio import atomic
from ..inference.loaded import LoadedModel, load_model_for_inference
from ..runs.saved import locate_run

TOLERANCE = 1e-5
METADATA_NAME = "bilstm.json"  # inside a SavedModel directory
ONNX_PACKAGES = ("tf2onnx", "onnx", "onnxruntime")
INSTALL_HINT = 'install them with: pip install "bilstm[export]"'
INPUT_NAMES = ("x", "lengths")
OUTPUT_NAME = "probabilities"
ONNX_OPSET = 17  # fixed, so an export does not change with the converter's default


@dataclass
class ExportResult:
    path: Path
    metadata_path: Path
    fmt: str
    max_difference: float
    seconds: float


def export_format(output: str, fmt: str | None) -> str:
    """The format asked for, else ``onnx`` for a ``.onnx`` name, else ``savedmodel``."""
    if fmt is not None:
        return fmt
    return "onnx" if output.lower().endswith(".onnx") else "savedmodel"


def metadata_path(path: Path, fmt: str) -> Path:
    """Where the description of an export goes: inside a SavedModel, beside an ONNX file."""
    return path / METADATA_NAME if fmt == "savedmodel" else path.with_name(path.name + ".json")


def run_export(target: str, output: str, fmt: str | None = None, force: bool = False) -> ExportResult:
    """Export the model of a run directory (or .keras file) to ``output``.

    Args:
        target: a run directory or a ``.keras`` file.
        output: the SavedModel directory or ONNX file to write.
        fmt: ``savedmodel`` or ``onnx``; None chooses from ``output``'s name.
        force: replace an existing export at ``output`` (only one that bilstm wrote).

    Raises:
        UsageError: a bad target or output, or (ONNX) the converter is not installed.
        ModelError: the model cannot be loaded, or the export does not reproduce it.
    """
    started = time.perf_counter()
    fmt = export_format(output, fmt)
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {fmt!r}", f"choose one of {', '.join(EXPORT_FORMATS)}")
    run = locate_run(target)
    path = Path(output)
    _check_output(path, fmt, force)
    if fmt == "onnx":
        _require(ONNX_PACKAGES, "ONNX export")
    backend.select("tensorflow")
    loaded = load_model_for_inference(run, select_device("cpu"))
    x, lengths = _probe_input(loaded.features)
    expected = _keras_output(loaded, x, lengths)
    metadata = describe(loaded, fmt)
    if fmt == "savedmodel":
        difference = _write_savedmodel(loaded, path, metadata, x, lengths, expected)
    else:
        difference = _write_onnx(loaded, path, metadata, x, lengths, expected)
    return ExportResult(path, metadata_path(path, fmt), fmt, difference, time.perf_counter() - started)


def describe(loaded: LoadedModel, fmt: str) -> dict[str, Any]:
    """What a server needs besides the graph: inputs, output, task and class names."""
    width = int(loaded.model.output_shape[-1])
    per_step = loaded.task == PER_STEP
    output_shape = [None, None, width] if per_step else [None, width]
    meaning = (
        "probability of class 1 (classes[1])" if width == 1 else "probability of each class, in the order of classes"
    )
    return {
        "format": fmt,
        "bilstm_version": __version__,
        "source": str(loaded.run.model_path),
        "task": loaded.task,
        "features": loaded.features,
        "num_classes": loaded.num_classes,
        "classes": loaded.class_names(),
        "standardized_inside": bool(loaded.run.data_spec.get("standardized", False)),
        "inputs": {
            "x": {"dtype": "float32", "shape": [None, None, loaded.features], "padding": "zeros after each length"},
            "lengths": {"dtype": "int32", "shape": [None], "meaning": "real steps of each sequence (1..steps)"},
        },
        "outputs": {OUTPUT_NAME: {"dtype": "float32", "shape": output_shape, "meaning": meaning}},
        **({"signature": "serving_default"} if fmt == "savedmodel" else {}),
    }


# ---------------------------------------------------------------------------- checks


def _check_output(path: Path, fmt: str, force: bool) -> None:
    """Refuse to overwrite without --force, and with it anything that is not an earlier export;
    refuse a folder we cannot write to. All before the slow part (loading, converting)."""
    if fmt == "onnx" and path.is_dir():
        raise UsageError(f"{path} is a directory; give a file name such as {path / 'model.onnx'}")
    if fmt == "savedmodel" and path.is_file():
        raise UsageError(f"{path} is a file; a SavedModel is a directory: give a new directory name")
    description = metadata_path(path, fmt)
    if path.exists() or path.is_symlink():
        if not force:
            raise UsageError(f"{path} already exists", "pass --force to replace it, or choose another -o")
        if not _written_by_bilstm(description, fmt):
            missing = f"has no {METADATA_NAME}" if fmt == "savedmodel" else f"has no description {description.name}"
            raise UsageError(
                f"{path} {missing}: not written by bilstm export; refusing to replace it",
                "choose another -o, or remove it yourself",
            )
    elif fmt == "onnx" and description.exists() and not _written_by_bilstm(description, fmt):
        # the ONNX file is new, but its description would overwrite someone's file
        raise UsageError(f"{description} exists and was not written by bilstm export; refusing to replace it")
    _check_writable(path.parent)


def _written_by_bilstm(description: Path, fmt: str) -> bool:
    """Whether ``description`` is the JSON file an earlier ``bilstm export`` of ``fmt`` wrote."""
    try:
        content = json.loads(description.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(content, dict) and "bilstm_version" in content and content.get("format") == fmt


def _check_writable(folder: Path) -> None:
    """Create the output's folder and a file in it now, rather than fail after the conversion."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(
            f"cannot write to {folder}: {(exc.strerror or str(exc)).lower()}", "choose another folder with -o"
        ) from None


def _require(packages: tuple[str, ...], what: str) -> None:
    """Refuse early (exit 2) when optional packages are missing, with the command to fix it."""
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"{what} needs {', '.join(missing)}, not installed", INSTALL_HINT)


def _probe_input(features: int) -> tuple[np.ndarray, np.ndarray]:
    """Random variable-length sequences (zero padding) that every check runs on."""
    rng = np.random.default_rng(0)
    lengths = np.array([12, 1, 7, 12, 3, 9, 5, 10], dtype=np.int32)
    x = rng.normal(0.5, 1.0, size=(len(lengths), int(lengths.max()), features)).astype(np.float32)
    x[np.arange(x.shape[1])[None, :] >= lengths[:, None]] = 0.0
    return x, lengths


def _keras_output(loaded: LoadedModel, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return np.asarray(loaded.model([x, lengths], training=False))


def _difference(got: np.ndarray, expected: np.ndarray, lengths: np.ndarray) -> float:
    """Largest absolute difference on real steps (outputs on padding are nobody's business)."""
    if got.shape != expected.shape:
        return float("inf")
    if got.ndim == 3:
        mask = np.arange(got.shape[1])[None, :] < lengths[:, None]
        got, expected = got[mask], expected[mask]
    return float(np.abs(got - expected).max())


def _verified(difference: float, fmt: str) -> float:
    if not difference <= TOLERANCE:
        raise ModelError(
            f"the {fmt} export does not reproduce the model (largest difference {difference:.3g} > {TOLERANCE:g}); "
            "nothing was written",
            "run again with --debug and report it",
        )
    return difference


def _signature(features: int) -> list:
    tf = backend.tensorflow()
    return [
        tf.TensorSpec((None, None, features), tf.float32, name=INPUT_NAMES[0]),
        tf.TensorSpec((None,), tf.int32, name=INPUT_NAMES[1]),
    ]


# ---------------------------------------------------------------------------- SavedModel


def _write_savedmodel(loaded: LoadedModel, path: Path, metadata: dict, x, lengths, expected) -> float:
    tf = backend.tensorflow()
    model = loaded.model
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = atomic.staging_directory(path)
    try:
        archive = backend.keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serve",
            lambda x, lengths: {OUTPUT_NAME: model([x, lengths], training=False)},
            input_signature=_signature(loaded.features),
        )
        archive.write_out(str(staging), verbose=False)
        serve = tf.saved_model.load(str(staging)).signatures["serving_default"]
        got = serve(x=tf.constant(x), lengths=tf.constant(lengths))[OUTPUT_NAME].numpy()
        difference = _verified(_difference(got, expected, lengths), "SavedModel")
        metadata = {**metadata, "max_difference": difference}
        atomic.write_text(staging / METADATA_NAME, json.dumps(metadata, indent=2) + "\n")
        atomic.replace_directory(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return difference


# ---------------------------------------------------------------------------- ONNX


def _write_onnx(loaded: LoadedModel, path: Path, metadata: dict, x, lengths, expected) -> float:
    """Convert with tf2onnx from a frozen graph.

    Keras' own ``export(format="onnx")`` hands tf2onnx a graph whose captured constants (the
    standardisation's mean and variance) become extra graph inputs: a file that loads and gives
    wrong answers. Freezing first turns every variable and captured tensor into a constant.
    """
    import onnxruntime

    model_proto = _convert(loaded)
    session = onnxruntime.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAMES[0]: x, INPUT_NAMES[1]: lengths})[0]
    difference = _verified(_difference(got, expected, lengths), "ONNX")
    text = json.dumps({**metadata, "max_difference": difference}, indent=2)
    model_proto.metadata_props.add(key="bilstm", value=text)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, model_proto.SerializeToString())
    atomic.write_text(metadata_path(path, "onnx"), text + "\n")
    return difference


def _convert(loaded: LoadedModel):
    tf = backend.tensorflow()
    _quiet_converter()
    import tf2onnx
    from keras.src.export.tf2onnx_lib import patch_tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # its probe of the removed np.object
        patch_tf2onnx()  # Keras' fixes for tf2onnx on numpy 2
    model = loaded.model
    call = tf.function(lambda x, lengths: model([x, lengths], training=False), autograph=False)
    concrete = call.get_concrete_function(*_signature(loaded.features))
    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False, aggressive_inlining=True)
    inputs = [tensor.name for tensor in frozen.inputs]
    outputs = [tensor.name for tensor in frozen.outputs]
    model_proto, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(),
        name=model.name,
        input_names=inputs,
        output_names=outputs,
        opset=ONNX_OPSET,
        tensors_to_rename={inputs[0]: INPUT_NAMES[0], inputs[1]: INPUT_NAMES[1], outputs[0]: OUTPUT_NAME},
    )
    return model_proto


def _quiet_converter() -> None:
    """tf2onnx logs its steps, and TensorFlow warns that the freezing it calls is a TF1 API;
    people see our one line instead (``--debug`` shows them)."""
    if not os.environ.get("BILSTM_DEBUG"):
        for name in ("tf2onnx", "tensorflow"):
            logging.getLogger(name).setLevel(logging.ERROR)
