"""Interruption, resume, NaN losses and atomic writes: nothing lost, nothing corrupt."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import threading

import numpy as np
import pytest

from bilstm_cli.errors import UsageError, os_error
from bilstm_cli.fileio import atomic
from bilstm_cli.runs.checkpoint import load_checkpoint
from bilstm_cli.runs.directory import MARKER, prepare_run_directory, release_run_directories

from .conftest import assert_clean_error, run_bilstm, tiny_flags
from .tensorboard_events import assert_events_match_history, trailing_bytes

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


def interrupt_after_first_row(process: subprocess.Popen, signals: int = 1, rows: int = 1) -> tuple[int, str]:
    """Wait (by reading its output, not by sleeping) until ``rows`` logged rows appear, then signal."""
    seen, logged = [], 0
    for raw in process.stderr:
        line = raw.decode()
        seen.append(line)
        logged += line.strip().split(" ")[0].isdigit()  # a logged epoch row
        if logged == rows:
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

    # the interrupted process wrote events past its checkpoint; a kill can also cut a record short
    (first_events,) = (tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*")
    with open(first_events, "ab") as handle:
        handle.write(struct.pack("<Q", 64) + b"\0" * 20)

    resumed = run_bilstm("train", "--resume", tmp_path / "run", "--quiet")
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert history_rows(tmp_path / "run") == history_rows(tmp_path / "reference")
    with np.load(tmp_path / "run" / "checkpoint.npz") as a, np.load(tmp_path / "reference" / "checkpoint.npz") as b:
        keys = [k for k in a.files if k.startswith("v")]
        assert keys and all(np.array_equal(a[k], b[k]) for k in keys)
    assert (tmp_path / "run" / "model.keras").exists()
    # the events continue the series: every epoch once across both files, no broken record left
    assert trailing_bytes(first_events) == 0
    assert_events_match_history(tmp_path / "run", learning_rate=0.003)


def test_second_interrupt_exits_at_once_without_corrupting_files(tmp_path):
    # by the second row, the first row's checkpoint (epoch 10) is on disk; a later one may be in
    # the middle of being written when the second Ctrl-C quits at once
    code, _ = interrupt_after_first_row(start("train", *LONG, "--out", tmp_path / "run"), signals=2, rows=2)
    assert code == 130
    state, meta = load_checkpoint(tmp_path / "run")  # readable, not half-written
    assert meta["epoch"] >= 10 and meta["epoch"] % 10 == 0 and state
    assert not list((tmp_path / "run").glob(".*.tmp*"))  # no temporary files left behind


def test_resume_refuses_flags_that_change_the_experiment(cli, tmp_path):
    (tmp_path / "run").mkdir()
    result = cli("train", "--resume", tmp_path / "run", "--batch-size", "5", "--learning-rate", "0.1")
    assert_clean_error(result, 2, "--batch-size", "--learning-rate", "would change the experiment")


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
    (tmp_path / "c" / "results" / "generated" / "bilstm-ave__repeat-001.json").unlink()
    (tmp_path / "c" / "summary.json").unlink()
    resumed = cli("compare", "--resume", tmp_path / "c", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert "= 6 runs" in resumed.stderr and "5 already done" in resumed.stderr
    assert resumed.stderr.count("repeat ") == 1  # only the missing run was trained
    before, after = json.loads(first.stdout), json.loads(resumed.stdout)
    rows = [[r["loss"] for r in summary["datasets"][0]["variants"]] for summary in (before, after)]
    assert rows[0] == rows[1]
    assert (tmp_path / "c" / "summary.json").exists()


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path):
    target = tmp_path / "checkpoint.npz"
    atomic.write_bytes(target, b"previous, complete checkpoint")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as temporary:
        temporary.write_bytes(b"half of a new checkp")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"previous, complete checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


# min_delta larger than any loss: the first logged epoch (10) stays the best one for good, so
# the run stops at epoch 10 + patience, long after the interruption (which comes after the first
# row). A resumed run that lost the state would count its patience from its own first row and
# stop later, or (without the best weights) end with the wrong weights.
EARLY = [*LONG, "--set", "train.early_stopping={enabled: true, patience: 1000, min_delta: 1.0e9}"]


def test_resumed_early_stopping_run_equals_an_uninterrupted_one(tmp_path):
    reference = run_bilstm("train", *EARLY, "--out", tmp_path / "reference", "--quiet")
    assert reference.returncode == 0, reference.stderr.decode()
    metrics = json.loads((tmp_path / "reference" / "metrics.json").read_text())
    assert (metrics["stopped"], metrics["best_epoch"], metrics["epochs_run"]) == ("early-stopping", 10, 1010)

    code, stderr = interrupt_after_first_row(start("train", *EARLY, "--out", tmp_path / "run"))
    assert code == 130, stderr
    _, meta = load_checkpoint(tmp_path / "run")
    assert 10 <= meta["epoch"] < 1010
    assert meta["early_stopping"] == {"best_loss": pytest.approx(meta["history"]["val_loss"][9]), "best_epoch": 10}

    resumed = run_bilstm("train", "--resume", tmp_path / "run", "--quiet")
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs_run"] == 1010
    assert history_rows(tmp_path / "run") == history_rows(tmp_path / "reference")
    with np.load(tmp_path / "run" / "checkpoint.npz") as a, np.load(tmp_path / "reference" / "checkpoint.npz") as b:
        keys = [k for k in a.files if k.startswith("v")]
        assert keys and all(np.array_equal(a[k], b[k]) for k in keys)  # the best (epoch 10) weights
    # the event files of both processes show every epoch once, as history.csv has it
    assert_events_match_history(tmp_path / "run", learning_rate=0.003)


def test_one_of_many_claims_on_a_run_directory_wins(tmp_path):
    """Processes given the same --out at the same moment: the claim is one exclusive create,
    so exactly one gets the directory in every round (a check-then-create lets several in)."""
    threads = 8
    for round_number in range(40):
        path = tmp_path / f"round-{round_number}" / "run"
        barrier = threading.Barrier(threads)
        outcomes: list[str] = []

        def claim(path=path, barrier=barrier, outcomes=outcomes) -> None:
            barrier.wait()
            try:
                prepare_run_directory(path, overwrite=False)
                outcomes.append("won")
            except UsageError as exc:
                outcomes.append(str(exc))

        workers = [threading.Thread(target=claim) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        release_run_directories()
        assert outcomes.count("won") == 1, outcomes
        assert all("already exists" in outcome for outcome in outcomes if outcome != "won"), outcomes
        assert [p.name for p in path.iterdir()] == [MARKER]


def test_two_train_processes_on_one_directory(tmp_path, tiny):
    """Two real processes started together with the same --out: one trains, one exits 2."""
    args = ["train", *tiny(epochs=4, log_every=2), "--out", tmp_path / "run", "--quiet"]
    processes = [start(*args) for _ in range(2)]
    results = [(process.wait(timeout=300), process.stderr.read().decode()) for process in processes]
    assert sorted(code for code, _ in results) == [0, 2], results
    loser = next(stderr for code, stderr in results if code == 2)
    assert "already exists" in loser and "Traceback" not in loser
    assert (tmp_path / "run" / "model.keras").exists()


def test_force_replaces_only_a_bilstm_directory(tmp_path):
    run = prepare_run_directory(tmp_path / "run", overwrite=False)
    (run / "model.keras").write_bytes(b"previous run")
    with pytest.raises(UsageError, match="already exists"):
        prepare_run_directory(run, overwrite=False)
    release_run_directories()  # the end of the first "process"
    prepare_run_directory(run, overwrite=True)
    release_run_directories()
    assert [p.name for p in run.iterdir()] == [MARKER]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # the previous run, set aside, is gone
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not a run")
    with pytest.raises(UsageError, match="not made by bilstm"):
        prepare_run_directory(tmp_path / "mine", overwrite=True)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]  # untouched, no marker left


def test_atomic_write_syncs_the_file_then_renames_then_syncs_the_folder(tmp_path, monkeypatch):
    """The call sequence is the thing under test (a power cut cannot be): data flushed before
    the rename, the folder's entry after it."""
    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        info = os.fstat(descriptor)
        calls.append(("fsync", "folder" if stat.S_ISDIR(info.st_mode) else "file", info.st_ino))
        real_fsync(descriptor)

    def replace(source, target):
        calls.append(("replace", os.path.basename(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic.write_text(tmp_path / "config.yaml", "train: {epochs: 5}\n")
    written = (tmp_path / "config.yaml").stat().st_ino
    assert calls == [
        ("fsync", "file", written),
        ("replace", "config.yaml"),
        ("fsync", "folder", tmp_path.stat().st_ino),
    ]


def test_a_run_directory_is_held_by_its_process_until_it_ends(tmp_path, tiny):
    """While a run trains, `--force`, `--resume` and `compare --force` on its directory exit 2
    (before the backend loads), naming the holder's pid; the running run's files stay its own."""
    run = tmp_path / "run"
    first = start("train", *tiny(epochs=10**6, log_every=1000), "--out", run)
    try:
        for raw in first.stderr:  # its "training ... -> DIR" line comes after the claim
            if raw.decode().startswith("training"):
                break
        refused = [
            run_bilstm("train", *tiny(units=8), "--out", run, "--force"),
            run_bilstm("train", "--resume", run),
            run_bilstm("compare", *tiny(), "--variants", "lstm", "--repeats", "2", "--out", run, "--force"),
        ]
        for result in refused:
            assert_clean_error(result, 2, str(run), "in use", f"pid {first.pid}")
        assert first.poll() is None
        assert "units: 6" in (run / "config.yaml").read_text()
    finally:
        first.kill()
        first.wait()
    # the lock died with the process
    assert run_bilstm("train", *tiny(epochs=2), "--out", run, "--force", "--quiet").returncode == 0


def test_resume_writes_the_outputs_of_a_run_stopped_after_its_last_checkpoint(cli, tmp_path, tiny):
    """A run killed between its finished checkpoint and its model/metrics: --resume writes them
    (the same model as the run would have saved), then evaluate works; a second resume refuses."""
    run = tmp_path / "run"
    assert cli("train", *tiny(epochs=6, log_every=3), "--out", run, "--quiet").exit_code == 0
    before = json.loads((run / "metrics.json").read_text())
    for name in ("model.keras", "metrics.json", "history.png"):
        (run / name).unlink()
    assert_clean_error(cli("evaluate", run), 1, "resume")

    resumed = cli("train", "--resume", run, "--quiet")
    assert resumed.exit_code == 0, resumed.stderr
    after = json.loads((run / "metrics.json").read_text())
    assert after["final"] == before["final"] and after["epochs_run"] == before["epochs_run"] == 6
    assert (run / "model.keras").exists() and (run / "history.png").exists()
    assert cli("evaluate", run, "--samples", "8", "--show", "0").exit_code == 0
    assert_clean_error(cli("train", "--resume", run), 2, "already finished")


def test_a_full_disk_is_a_message_for_people_not_an_internal_error():
    """A real write to /dev/full (ENOSPC), and the translation of a wrapped one that names a file."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with open("/dev/full", "wb") as full:
        result = run_bilstm("generate", "--samples", "5", stdout=full)
    assert_clean_error(result, 1, "no space left on the device holding the output")
    assert b"report it" not in result.stderr and b"internal" not in result.stderr

    try:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/runs/x/.model.keras.1a2b.tmp.keras")
        except OSError as cause:
            raise ValueError("saving failed") from cause  # as libraries wrap it
    except ValueError as wrapped:
        translated = os_error(wrapped)
    assert translated is not None and translated.exit_code == 1
    assert translated.message == "no space left on the device holding /data/runs/x"
    assert os_error(OSError(errno.ENOENT, "No such file or directory", "x")) is None


def test_a_finished_run_trained_longer_equals_one_longer_run(cli, tmp_path):
    """`train --resume RUN --epochs N`: every epoch's data has its own seeded stream, so training a
    finished run on from its checkpoint equals one run of N epochs (same log interval)."""
    flags = tiny_flags(epochs=None, log_every=10, seed=3)
    assert cli("train", *flags, "--epochs", "40", "--out", tmp_path / "short", "-q").exit_code == 0
    longer = cli("train", "--resume", tmp_path / "short", "--epochs", "80", "-q")
    assert longer.exit_code == 0, longer.stderr
    assert cli("train", *flags, "--epochs", "80", "--out", tmp_path / "long", "-q").exit_code == 0

    def scores(run):  # every column but the wall time
        return [line.rsplit(",", 1)[0] for line in (run / "history.csv").read_text().splitlines()]

    assert len(scores(tmp_path / "short")) == 81 and scores(tmp_path / "short") == scores(tmp_path / "long")
    with np.load(tmp_path / "short" / "checkpoint.npz") as a, np.load(tmp_path / "long" / "checkpoint.npz") as b:
        keys = [k for k in a.files if k.startswith("v")]
        assert keys and all(np.array_equal(a[k], b[k]) for k in keys)
    assert "epochs: 80" in (tmp_path / "short" / "config.yaml").read_text()
    assert json.loads((tmp_path / "short" / "metrics.json").read_text())["epochs_run"] == 80
    # only longer, and not where the planned length shapes training
    assert_clean_error(cli("train", "--resume", tmp_path / "short", "--epochs", "60"), 2, "trains a run longer")
    early = [*flags, "--epochs", "20", "--early-stopping", "--patience", "5", "--out", tmp_path / "early", "-q"]
    assert cli("train", *early).exit_code == 0
    assert_clean_error(cli("train", "--resume", tmp_path / "early", "--epochs", "40"), 2, "early stopping")


def test_a_run_that_stopped_early_is_finished_for_resume(cli, tmp_path):
    """A finished run that early stopping ended before its planned epochs is not trained on by a
    plain --resume (only --epochs plans more, and it refuses early stopping)."""
    run = tmp_path / "early"
    flags = tiny_flags(epochs=200, log_every=1, seed=3)
    settings = ["--set", "train.early_stopping={enabled: true, patience: 1, min_delta: 1.0e9}"]
    assert cli("train", *flags, *settings, "--out", run, "-q").exit_code == 0
    assert json.loads((run / "metrics.json").read_text())["stopped"] == "early-stopping"
    assert_clean_error(cli("train", "--resume", run), 2, "already finished")


def test_ctrl_c_stops_worker_processes_and_resume_finishes_the_comparison(tmp_path):
    """Issue 24: the driver shares only a stop request with its worker processes (records come
    back as each job's result); Ctrl-C must still stop them, keep finished runs, and resume."""
    args = ["compare", "--modes", "sum,concat", "--repeats", "4", *tiny_flags(epochs=6000, log_every=1000)]
    args += ["--seed", "3", "--set", "compare.runs_per_program=1", "--workers", "2"]  # 4 programs (one per repeat)
    out = tmp_path / "c"
    process = start(*args, "--out", out)
    seen = []
    for raw in process.stderr:  # wait for the first finished run (reading output, not sleeping)
        seen.append(raw.decode())
        if seen[-1].startswith("[1/8"):
            process.send_signal(signal.SIGINT)
            break
    stderr = "".join(seen) + process.stderr.read().decode()
    assert process.wait(timeout=300) == 130, stderr
    assert "resume with: bilstm compare --resume" in stderr and "Traceback" not in stderr
    kept = sorted((out / "results" / "generated").glob("*.json"))
    assert 1 <= len(kept) < 8 and not (out / "summary.json").exists()

    resumed = run_bilstm("compare", "--resume", out)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert len(list((out / "results" / "generated").glob("*.json"))) == 8
    assert (out / "summary.json").exists()
