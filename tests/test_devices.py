"""One run on several devices (``train.devices``): data-parallel training on 2 virtual CPU devices.

A backend's devices are fixed before it starts, so the multi-device runs are subprocesses:
TensorFlow's CPU is split into two logical devices by ``BILSTM_CPU_DEVICES=2``, JAX's host
platform by ``XLA_FLAGS=--xla_force_host_platform_device_count=2``. Each backend's runs are
made in the session of that backend (``make test`` runs both). The refusals need no second
device and run in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from bilstm_cli.cli import main
from bilstm_cli.device import DeviceInfo, cpu_device_count, spread_over
from bilstm_cli.errors import DeviceError
from bilstm_cli.runs.checkpoint import load_checkpoint, save_checkpoint

from .conftest import assert_clean_error, tiny_flags

SPLIT_CPU = {
    "tensorflow": {"BILSTM_CPU_DEVICES": "2"},
    "jax": {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
}
DEVICE_NAMES = {"tensorflow": ["/CPU:0", "/CPU:1"], "jax": ["cpu:0", "cpu:1"]}

# Per-epoch loss, 2 devices vs 1 with the same global batch: only the order in which float32
# partial sums (gradients, loss terms) are added differs. Measured (max abs difference per
# epoch, 40 epochs x 2 steps of batch 8, seeds 1-3): per-step BiLSTM, per-sequence task,
# 2-layer LSTM, XLA on and off: <= 1.2e-7 on both backends; a variable-length 3-class file
# with class weights (8 epochs, a padded last batch): 2.4e-7 (JAX), 1.2e-7 (TensorFlow).
# The tolerance is about 4x the worst seen. (With dropout JAX still agrees to 6e-8;
# TensorFlow draws each device's masks separately, so those runs differ by ~3e-2: not tested.)
LOSS_TOLERANCE = 1e-6

FLAGS = tiny_flags(
    epochs=6,
    samples_per_epoch=16,
    batch_size=8,
    validation_size=64,
    units=6,
    log_every=3,
    jit_compile=None,
    seed=4,
    checkpoint_every=3,
)


def start(backend: str, *args: str) -> subprocess.Popen:
    """``bilstm ARGS`` in a subprocess that sees two CPU devices."""
    env = {**os.environ, **SPLIT_CPU[backend], "BILSTM_BACKEND": backend, "PYTHONUNBUFFERED": "1"}
    env.pop("BILSTM_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "bilstm_cli", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


def finish(process: subprocess.Popen) -> str:
    """Wait for a process; its stderr (the test fails if it did not exit 0)."""
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr.decode()
    return stderr.decode()


def checkpoint_history(run) -> dict:
    """Every epoch's scores at full precision (history.csv rounds to 6 digits)."""
    return load_checkpoint(run)[1]["history"]


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("tensorflow", marks=pytest.mark.only_backend("tensorflow")),
        pytest.param("jax", marks=pytest.mark.only_backend("jax")),
    ],
)
def runs(request, tmp_path_factory):
    """A backend's runs of one tiny config: on 2 devices and the first half of that run (to be
    resumed), in subprocesses, and meanwhile the same run on 1 device in this process (whose
    backend is the one under test: another process would only add its start-up time)."""
    backend, folder = request.param, tmp_path_factory.mktemp(f"devices-{request.param}")
    two = start(backend, "train", *FLAGS, "--devices", "2", "--out", folder / "two", "--quiet")
    half = start(backend, "train", *FLAGS, "--epochs", "3", "--devices", "2", "--out", folder / "half", "--quiet")
    one = CliRunner().invoke(main, ["train", *FLAGS, "--devices", "1", "--out", str(folder / "one"), "--quiet"])
    assert one.exit_code == 0, one.stderr
    finish(two)
    finish(half)
    return backend, folder


def test_two_devices_train_what_one_device_trains(runs):
    backend, folder = runs
    one, two = checkpoint_history(folder / "one"), checkpoint_history(folder / "two")
    assert len(two["loss"]) == 6 and len(set(two["loss"])) == 6  # real, changing losses
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=0, atol=LOSS_TOLERANCE)
    validated = [np.array(run["val_loss"], dtype=float) for run in (two, one)]  # None (NaN): not logged
    np.testing.assert_allclose(*validated, rtol=0, atol=LOSS_TOLERANCE, equal_nan=True)
    assert np.isfinite(validated[0]).sum() == 2  # epochs 3 and 6

    metrics = {name: json.loads((folder / name / "metrics.json").read_text()) for name in ("one", "two")}
    assert metrics["two"]["device"]["devices"] == 2
    assert metrics["two"]["device"]["names"] == DEVICE_NAMES[backend]
    assert metrics["one"]["device"]["devices"] == 1 and metrics["one"]["device"]["names"] == DEVICE_NAMES[backend][:1]


def test_two_device_checkpoint_resumes_bit_identically(runs):
    """The 3-epoch run, reopened as an interrupted 6-epoch run, resumes on 2 devices into exactly
    the uninterrupted 6-epoch run (weights, optimizer state and history)."""
    backend, folder = runs
    half = folder / "half"
    config = yaml.safe_load((half / "config.yaml").read_text())
    config["train"]["epochs"] = 6
    (half / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    state, meta = load_checkpoint(half)
    assert meta["epoch"] == 3
    save_checkpoint(half, state, {**meta, "finished": False})

    finish(start(backend, "train", "--resume", half, "--quiet"))
    resumed, reference = load_checkpoint(half), load_checkpoint(folder / "two")
    assert len(resumed[0]) == len(reference[0])
    assert all(np.array_equal(a, b) for a, b in zip(resumed[0], reference[0]))
    for column in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert resumed[1]["history"][column] == reference[1]["history"][column], column


@pytest.mark.only_backend("jax")
def test_compare_refuses_several_devices(tmp_path):
    """compare trains each run on one device (its workers run several runs at once)."""
    flags = tiny_flags(epochs=2, samples_per_epoch=8, batch_size=8, validation_size=16, units=4, log_every=1, seed=1)
    process = start(
        "jax",
        "compare",
        *flags,
        "--set",
        "train.devices=2",
        "--variants",
        "lstm-forward",
        "--repeats",
        "2",
        "--out",
        tmp_path / "c",
        "--quiet",
    )
    stdout, stderr = process.communicate(timeout=600)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert_clean_error(result, 2, "train.devices=2", "compare trains each run on one device")


# ---------------------------------------------------------------------------- refusals (in-process)

REFUSAL_FLAGS = tiny_flags(epochs=1, samples_per_epoch=8, batch_size=8, validation_size=8, units=4, log_every=1)


def test_batch_size_must_split_evenly(cli, tmp_path):
    result = cli("train", *REFUSAL_FLAGS, "--devices", "3", "--out", tmp_path / "run")
    assert_clean_error(result, 2, "--devices 3", "batch size 8 is not divisible by 3")
    assert not (tmp_path / "run").exists()


def test_more_devices_than_the_backend_sees(cli, tmp_path):
    result = cli("train", *REFUSAL_FLAGS, "--batch-size", "64", "--devices", "64", "--out", tmp_path / "run")
    assert_clean_error(result, 2, "--devices 64", "sees only", "CPU device(s)", "BILSTM_CPU_DEVICES=64")


def test_devices_must_be_positive(cli, tmp_path):
    assert_clean_error(cli("train", *REFUSAL_FLAGS, "--devices", "0", "--out", tmp_path / "run"), 2, "train.devices")


def test_resume_keeps_the_runs_devices(cli, tmp_path):
    (tmp_path / "run").mkdir()
    result = cli("train", "--resume", tmp_path / "run", "--devices", "2")
    assert_clean_error(result, 2, "--devices", "would change the experiment")


def test_one_gpu_index_with_several_devices_is_refused():
    one_gpu = DeviceInfo("gpu:1", "gpu", "/GPU:0", "GPU 1 (test)", index=1)
    with pytest.raises(DeviceError, match=r"--device gpu:1 picks one GPU, but --devices 2 trains on the first 2"):
        spread_over(one_gpu, 2, batch_size=8)


def test_one_device_is_left_as_selected():
    cpu = DeviceInfo("cpu", "cpu", "/CPU:0", "CPU")
    assert spread_over(cpu, 1, batch_size=7) is cpu
    assert cpu.to_dict()["devices"] == 1 and cpu.to_dict()["names"] == ["/CPU:0"]


@pytest.mark.parametrize("setting", ["two", "0", "-1", "65"])
def test_cpu_split_setting_is_checked(monkeypatch, setting):
    monkeypatch.setenv("BILSTM_CPU_DEVICES", setting)
    with pytest.raises(DeviceError, match="BILSTM_CPU_DEVICES"):
        cpu_device_count()


def test_cpu_split_is_off_by_default(monkeypatch):
    monkeypatch.delenv("BILSTM_CPU_DEVICES", raising=False)
    assert cpu_device_count() == 1
    monkeypatch.setenv("BILSTM_CPU_DEVICES", "2")
    assert cpu_device_count() == 2
