"""``bilstm export``: the exported SavedModel / ONNX model gives what ``bilstm predict`` gives.

Export always runs on TensorFlow. In the TensorFlow pass of the suite it runs in-process; in
the JAX pass (models trained on JAX) in a subprocess, since this process's Keras is on JAX.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from click.testing import CliRunner

from bilstm_cli import backend
from bilstm_cli.cli import main

from .conftest import assert_clean_error, run_bilstm, tiny_flags

TOLERANCE = 1e-5
CLASSES = ["jump", "run", "walk"]


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def export(*args) -> tuple[int, str]:
    """Run ``bilstm export ARGS`` (in-process where this process is on TensorFlow)."""
    if backend.name() == "tensorflow":
        result = invoke("export", *args)
        return result.exit_code, result.stderr
    result = run_bilstm("export", *args)
    return result.returncode, result.stderr.decode()


def ragged_jsonl(rng, count: int, features: int, labels=None) -> str:
    """Sequences of 1..11 steps (the last one the longest), as JSONL."""
    lines = []
    for index in range(count):
        steps = 11 if index == count - 1 else int(rng.integers(1, 12))
        x = rng.normal(3.0, 2.0, size=(steps, features)).round(4)
        record = {"x": x[:, 0].tolist() if features == 1 else x.tolist()}
        if labels is not None:
            record["y"] = labels(x)
        lines.append(json.dumps(record))
    return "\n".join(lines) + "\n"


def padded(jsonl: str, features: int) -> tuple[np.ndarray, np.ndarray]:
    rows = [np.asarray(json.loads(line)["x"], np.float32).reshape(-1, features) for line in jsonl.splitlines()]
    lengths = np.array([len(r) for r in rows], np.int32)
    x = np.zeros((len(rows), lengths.max(), features), np.float32)
    for i, r in enumerate(rows):
        x[i, : len(r)] = r
    return x, lengths


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs: per-step binary BiLSTM (generated data), and a per-sequence backward LSTM
    with 3 named classes, 2 features and standardisation inside the model (the case tf2onnx's
    stock path gets wrong)."""
    folder = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(7)
    per_step = folder / "per-step"
    result = invoke("train", *tiny_flags(epochs=6, log_every=3), "--seed", "1", "--out", per_step, "--quiet")
    assert result.exit_code == 0, result.stderr
    (folder / "train.jsonl").write_text(
        ragged_jsonl(rng, 60, 2, labels=lambda x: CLASSES[int(x.sum() // 6) % 3]),
    )
    sequence = folder / "sequence"
    result = invoke(
        "train",
        "--data",
        folder / "train.jsonl",
        *tiny_flags(epochs=6, log_every=3, validation_size=None, task="sequence", standardize="true"),
        "--direction",
        "backward",
        "--seed",
        "2",
        "--out",
        sequence,
        "--quiet",
    )
    assert result.exit_code == 0, result.stderr
    inputs = {
        "per-step": ragged_jsonl(rng, 9, 1),
        "sequence": ragged_jsonl(rng, 9, 2),
    }
    for name, text in inputs.items():
        (folder / f"{name}-input.jsonl").write_text(text)
    return folder


def predicted(run, input_path) -> list:
    """``bilstm predict --format jsonl``: per sequence, its probabilities."""
    result = invoke("predict", run, input_path, "--format", "jsonl")
    assert result.exit_code == 0, result.stderr
    return [json.loads(line)["probability"] for line in result.stdout.splitlines()]


LOAD_SAVEDMODEL = """
import sys, numpy as np, tensorflow as tf
arrays = np.load(sys.argv[2])
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = serve(x=tf.constant(arrays["x"]), lengths=tf.constant(arrays["lengths"]))["probabilities"].numpy()
np.save(sys.argv[3], out)
"""


def savedmodel_outputs(path, x, lengths, scratch) -> np.ndarray:
    if backend.name() == "tensorflow":
        tf = backend.tensorflow()
        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        return serve(x=tf.constant(x), lengths=tf.constant(lengths))["probabilities"].numpy()
    np.savez(scratch / "input.npz", x=x, lengths=lengths)
    subprocess.run(
        [sys.executable, "-c", LOAD_SAVEDMODEL, str(path), str(scratch / "input.npz"), str(scratch / "out.npy")],
        check=True,
        capture_output=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    return np.load(scratch / "out.npy")


def onnx_outputs(path, x, lengths) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x", "lengths"]
    return session.run(["probabilities"], {"x": x, "lengths": lengths})[0]


def largest_difference(exported: np.ndarray, expected: list, lengths: np.ndarray, per_step: bool) -> float:
    """Max |export - predict| over the real steps (predict prints 6 decimals)."""
    worst = 0.0
    for i, probabilities in enumerate(expected):
        got = exported[i, : lengths[i], 0] if per_step else exported[i]
        worst = max(worst, float(np.abs(got - np.asarray(probabilities, np.float32)).max()))
    return worst


@pytest.mark.parametrize("fmt", ["savedmodel", "onnx"])
@pytest.mark.parametrize("kind", ["per-step", "sequence"])
def test_export_gives_what_predict_gives(runs, tmp_path, fmt, kind):
    features = 1 if kind == "per-step" else 2
    run, input_path = runs / kind, runs / f"{kind}-input.jsonl"
    output = tmp_path / ("model.onnx" if fmt == "onnx" else "savedmodel")
    code, stderr = export(run, "--format", fmt, "-o", output)
    assert code == 0, stderr
    x, lengths = padded(input_path.read_text(), features)
    assert len(set(lengths.tolist())) > 3  # ragged: padding must not change any output
    if fmt == "onnx":
        exported = onnx_outputs(output, x, lengths)
        metadata_file = tmp_path / "model.onnx.json"
        embedded = {p.key: p.value for p in onnx.load(str(output)).metadata_props}
        assert json.loads(embedded["bilstm"]) == json.loads(metadata_file.read_text())
    else:
        exported = savedmodel_outputs(output, x, lengths, tmp_path)
        metadata_file = output / "bilstm.json"
    difference = largest_difference(exported, predicted(run, input_path), lengths, kind == "per-step")
    assert difference <= TOLERANCE, difference
    metadata = json.loads(metadata_file.read_text())
    assert metadata["task"] == kind and metadata["features"] == features
    assert metadata["classes"] == (["0", "1"] if kind == "per-step" else CLASSES)
    assert metadata["standardized_inside"] is (kind == "sequence")
    assert metadata["max_difference"] <= TOLERANCE


def test_export_replaces_only_with_force(runs, tmp_path):
    output = tmp_path / "model.onnx"
    assert export(runs / "per-step", "-o", output)[0] == 0  # the format follows the name
    first = output.read_bytes()
    code, stderr = export(runs / "per-step", "-o", output)
    assert code == 2 and "already exists" in stderr and output.read_bytes() == first
    assert export(runs / "per-step", "-o", output, "--force")[0] == 0
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_missing_converter_is_a_usage_error_with_the_pip_command(cli, runs, tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "tf2onnx" else real_find_spec(name))
    result = cli("export", runs / "per-step", "-o", tmp_path / "model.onnx")
    assert_clean_error(result, 2, "tf2onnx", 'pip install "bilstm[export]"')
    assert not (tmp_path / "model.onnx").exists()


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_gru_and_simple_rnn_models_export(runs, tmp_path, cell):
    """A Bidirectional GRU / SimpleRNN exports to ONNX and gives what predict gives."""
    run = tmp_path / cell
    result = invoke("train", *tiny_flags(epochs=4, log_every=2), "--cell", cell, "--seed", "1", "--out", run, "-q")
    assert result.exit_code == 0, result.stderr
    output = tmp_path / "model.onnx"
    code, stderr = export(run, "-o", output)
    assert code == 0, stderr
    input_path = runs / "per-step-input.jsonl"
    x, lengths = padded(input_path.read_text(), 1)
    difference = largest_difference(onnx_outputs(output, x, lengths), predicted(run, input_path), lengths, True)
    assert difference <= TOLERANCE, difference


@pytest.mark.only_backend("tensorflow")  # in-process; the checks come before any backend work
def test_force_replaces_only_an_export_bilstm_wrote(cli, runs, tmp_path):
    """--force never destroys a file bilstm did not write (nor the .json it would write beside it)."""
    mine = tmp_path / "mine.txt"
    mine.write_text("keep\n")
    assert_clean_error(cli("export", runs / "per-step", "-o", mine, "--format", "onnx", "--force"), 2, "not written by")
    assert mine.read_text() == "keep\n"
    (tmp_path / "new.onnx.json").write_text("my notes\n")
    assert_clean_error(cli("export", runs / "per-step", "-o", tmp_path / "new.onnx"), 2, "new.onnx.json")
    assert (tmp_path / "new.onnx.json").read_text() == "my notes\n"
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "bilstm.json").write_text("{}")
    assert_clean_error(cli("export", runs / "per-step", "-o", tmp_path / "dir", "--force"), 2, "not written by")


@pytest.mark.only_backend("tensorflow")  # in-process; the checks come before any backend work
def test_export_to_a_folder_it_cannot_write_is_a_clean_error(cli, runs, tmp_path):
    if os.geteuid() == 0:  # root writes into read-only folders: a kernel file system refuses it new files
        folder = Path("/sys")
        if not folder.is_dir():
            pytest.skip("no read-only folder for root")
    else:
        folder = tmp_path / "read-only"
        folder.mkdir(mode=0o555)
    for name in ("model.onnx", "saved"):
        assert_clean_error(cli("export", runs / "per-step", "-o", folder / name), 2, f"cannot write to {folder}")


def test_a_savedmodel_directory_has_normal_permissions(runs, tmp_path):
    output = tmp_path / "saved"
    assert export(runs / "per-step", "-o", output)[0] == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o777 & ~current_umask()


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
