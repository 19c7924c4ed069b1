"""Interruption, resume, NaN losses and atomic writes: nothing lost, nothing corrupt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from bilstm_cli.runs.checkpoint import load_checkpoint

from bilstm_cli.runs import atomic

from .conftest import assert_clean_error, run_bilstm, tiny_flags

LONG = tiny_flags(
    epochs=1500,
    samples_per_epoch=2,
    batch_size=2,
    validation_size=32,
    units=6,
    log_every=10,
    jit_compile=None,
    seed=5,
    checkpoint_every=10,
)


def start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "bilstm_cli", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


def interrupt_after_first_row(process: subprocess.Popen, signals: int = 1) -> tuple[int, str]:
    """Wait (by reading its output, not by sleeping) until a logged row appears, then signal."""
    seen = []
    for raw in process.stderr:
        line = raw.decode()
        seen.append(line)
        if line.strip().split(" ")[0].isdigit():  # a logged epoch row
            for _ in range(signals):
                process.send_signal(signal.SIGINT)
            break
    rest = process.stderr.read().decode()
    return process.wait(timeout=300), "".join(seen) + rest


def history_rows(path) -> list[list[str]]:
    return [line.split(",")[:5] for line in (path / "history.csv").read_text().splitlines()]


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    reference = run_bilstm("train", *LONG, "--out", tmp_path / "reference", "--quiet")
    assert reference.returncode == 0, reference.stderr.decode()

    code, stderr = interrupt_after_first_row(start("train", *LONG, "--out", tmp_path / "run"))
    assert code == 130, stderr
    assert "resume with: bilstm train --resume" in stderr and "Traceback" not in stderr
    state, meta = load_checkpoint(tmp_path / "run")
    assert 10 <= meta["epoch"] < 1500 and not meta["finished"]
    assert len(history_rows(tmp_path / "run")) == 1 + meta["epoch"]
    assert not (tmp_path / "run" / "model.keras").exists()

    resumed = run_bilstm("train", "--resume", tmp_path / "run", "--quiet")
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert history_rows(tmp_path / "run") == history_rows(tmp_path / "reference")
    with np.load(tmp_path / "run" / "checkpoint.npz") as a, np.load(tmp_path / "reference" / "checkpoint.npz") as b:
        keys = [k for k in a.files if k.startswith("v")]
        assert keys and all(np.array_equal(a[k], b[k]) for k in keys)
    assert (tmp_path / "run" / "model.keras").exists()


def test_second_interrupt_exits_at_once_without_corrupting_files(tmp_path):
    code, _ = interrupt_after_first_row(start("train", *LONG, "--out", tmp_path / "run"), signals=2)
    assert code == 130
    if (tmp_path / "run" / "checkpoint.npz").exists():
        state, meta = load_checkpoint(tmp_path / "run")  # readable, not half-written
        assert meta["epoch"] >= 10 and state
    assert not list((tmp_path / "run").glob(".*.tmp*"))  # no temporary files left behind


def test_resume_refuses_flags_that_change_the_experiment(cli, tmp_path):
    (tmp_path / "run").mkdir()
    result = cli("train", "--resume", tmp_path / "run", "--epochs", "5", "--learning-rate", "0.1")
    assert_clean_error(result, 2, "--epochs", "--learning-rate", "would change the experiment")


def test_resume_without_checkpoint(cli, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("train: {epochs: 5}\n")
    assert_clean_error(cli("train", "--resume", tmp_path / "run"), 2, "nothing to resume")


def test_nan_loss_stops_keeps_history_and_checkpoint(tmp_path):
    result = run_bilstm(
        "train",
        "--epochs",
        "400",
        "--set",
        "data.samples_per_epoch=1",
        "--batch-size",
        "1",
        "--set",
        "data.validation_size=16",
        "--units",
        "6",
        "--log-every",
        "1",
        "--seed",
        "3",
        "--set",
        "train.checkpoint_every=1",
        "--learning-rate",
        "1e38",
        "--out",
        tmp_path / "run",
        "--quiet",
    )
    assert_clean_error(result, 1, "NaN or infinite at epoch", "lower the learning rate", "last good checkpoint")
    stderr = result.stderr.decode()
    bad_epoch = int(stderr.split("at epoch ")[1].split(";")[0])
    rows = history_rows(tmp_path / "run")
    assert len(rows) == bad_epoch  # header + every good epoch
    assert all(np.isfinite(float(row[1])) for row in rows[1:])
    _, meta = load_checkpoint(tmp_path / "run")
    assert meta["epoch"] == bad_epoch - 1
    assert not (tmp_path / "run" / "model.keras").exists()


def test_compare_resume_runs_only_what_is_missing(cli, tmp_path):
    args = [
        "compare",
        "--modes",
        "sum,ave",
        "--repeats",
        "3",
        "--epochs",
        "10",
        "--set",
        "train.log_every=5",
        "--set",
        "data.samples_per_epoch=2",
        "--set",
        "train.batch_size=2",
        "--set",
        "data.validation_size=16",
        "--set",
        "model.units=4",
        "--seed",
        "2",
        "--set",
        "train.jit_compile=false",
        "--out",
        tmp_path / "c",
    ]
    first = cli(*args, "--json")
    assert first.exit_code == 0, first.stderr
    (tmp_path / "c" / "results" / "bilstm-ave__repeat-001.json").unlink()
    (tmp_path / "c" / "summary.json").unlink()
    resumed = cli("compare", "--resume", tmp_path / "c", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert "5 of 6 runs already done" in resumed.stderr
    assert resumed.stderr.count("repeat ") == 1  # only the missing run was trained
    before, after = json.loads(first.stdout), json.loads(resumed.stdout)
    assert [r["val_loss"] for r in before["variants"]] == [r["val_loss"] for r in after["variants"]]
    assert (tmp_path / "c" / "summary.json").exists()


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path):
    target = tmp_path / "checkpoint.npz"
    atomic.write_bytes(target, b"previous, complete checkpoint")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as temporary:
        temporary.write_bytes(b"half of a new checkp")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"previous, complete checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]
