"""The refit (issue 23): epochs chosen on the validation split, then a fresh model trained on
every training sequence for that many epochs, resumable in either phase."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from bilstm_cli.commands import train as train_command
from bilstm_cli.data.io import read_dataset
from bilstm_cli.data.prepare import stratified_split

from .conftest import stop_request_at, write_series
from .test_recipe import EXAMPLE_TRAIN

SEQUENCES = 20


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    """20 short series of two classes (a level shift and noise): a small training set."""
    path = tmp_path_factory.mktemp("refit") / "small.ts"
    write_series(path, SEQUENCES, 4)
    return path


def flags(data) -> list[str]:
    return [
        *("--data", data, "--seed", "3", "--units", "4", "--quiet", "--no-tensorboard"),
        *("--set", "train.epochs=40", "--set", "train.checkpoint_every=2", "--set", "train.jit_compile=false"),
        *("--set", "train.refit.enabled=true", "--set", "train.early_stopping.patience=3"),
        *("--set", "train.early_stopping.start_from=8", "--set", "train.refit.min_epochs=6"),
    ]


def rows(path) -> list[list[str]]:
    with open(path) as handle:
        return [row[:3] for row in csv.reader(handle)]


@pytest.fixture(scope="module")
def reference(small_file, tmp_path_factory):
    from click.testing import CliRunner

    from bilstm_cli.cli import main

    run = tmp_path_factory.mktemp("reference") / "run"
    args = [str(a) for a in ["train", *flags(small_file), "--out", run]]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return run


def test_the_refit_trains_every_sequence_for_the_epochs_the_validation_chose(reference):
    metrics = json.loads((reference / "metrics.json").read_text())
    selection, refit = metrics["selection"], metrics["refit"]
    assert selection["train_sequences"] + selection["validation_sequences"] == SEQUENCES
    assert refit["sequences"] == SEQUENCES and metrics["final"]["validation_sequences"] == 0
    # the validation phase: history.csv, its best epoch and no stop before start_from
    history = np.genfromtxt(reference / "history.csv", delimiter=",", names=True)
    assert selection["epochs_run"] == len(history) and selection["epochs_run"] >= 8
    assert selection["best_epoch"] == int(history["epoch"][np.nanargmin(history["val_loss"])])
    # the refit: best epoch x scale 1, recorded in its own history, and the saved model's
    assert refit["epochs"] == selection["refit_epochs"] == selection["best_epoch"] == metrics["epochs_run"]
    assert len(rows(reference / "history-refit.csv")) == 1 + refit["epochs"]
    assert yaml.safe_load((reference / "config.yaml").read_text())["train"]["refit"]["enabled"] is True


def test_a_run_stopped_during_the_refit_resumes_the_refit_exactly(reference, small_file, tmp_path, cli, monkeypatch):
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(train_command, "StopRequest", stop_request_at(5, phase=2))  # the refit, 5th check
        interrupted = cli("train", *flags(small_file), "--out", run)
    assert interrupted.exit_code == 130 and "of the refit" in interrupted.stderr
    meta = json.loads(np.load(run / "checkpoint.npz")["meta"].tobytes().decode())
    assert meta["phase"] == "refit" and meta["epoch"] == 4 and not meta["finished"]

    resumed = cli("train", "--resume", run, "--quiet")
    assert resumed.exit_code == 0, resumed.stderr
    for name in ("history.csv", "history-refit.csv"):
        assert rows(run / name) == rows(reference / name)
    with np.load(run / "checkpoint.npz") as a, np.load(reference / "checkpoint.npz") as b:
        keys = [k for k in a.files if k.startswith("v")]
        assert keys and all(np.array_equal(a[k], b[k]) for k in keys)
    ours, theirs = (json.loads((r / "metrics.json").read_text()) for r in (run, reference))
    assert ours["refit"]["epochs"] == theirs["refit"]["epochs"]
    assert ours["final"]["loss"] == theirs["final"]["loss"]


def test_config_show_prints_the_refit_settings(cli):
    result = cli("config", "show", "--data", EXAMPLE_TRAIN)
    assert result.exit_code == 0, result.stderr
    train = yaml.safe_load(result.stdout)["train"]
    assert train["refit"] == {"enabled": False, "scale": 1.0, "min_epochs": 60}  # measured, off (README)
    assert train["early_stopping"]["start_from"] == 60
    on = yaml.safe_load(cli("config", "show", "--data", EXAMPLE_TRAIN, "--set", "train.refit.enabled=true").stdout)
    assert on["train"]["refit"]["enabled"] is True and on["train"]["refit"]["min_epochs"] == 60


def test_a_split_too_small_for_every_class_still_holds_out_a_sequence(tmp_path):
    """Two series per class: a 0.2 share of each rounds to none, so one class gives one."""
    path = tmp_path / "eight.ts"
    body = "".join(f"{i},{i + 1}:{'abcd'[i % 4]}\n" for i in range(8))
    path.write_text("@problemName Eight\n@univariate true\n@classLabel true a b c d\n@data\n" + body)
    kept, held_out = stratified_split(read_dataset(str(path)), 0.2, seed=1)
    assert (kept.size, held_out.size) == (6, 2)


def test_compare_refits_every_run_for_its_own_chosen_epochs(small_file, tmp_path, cli):
    """Four variants (two modes x two rates) x two repeats as one program: each copy stops its
    refit at its own epochs."""
    dropped = ("--seed", "3", "--quiet", "--units", "4", "--no-tensorboard")
    settings = [f for f in flags(small_file)[2:] if f not in dropped]
    args = ["--data", small_file, "--modes", "sum,ave", "--repeats", "2", "--set", "model.units=4", *settings]
    # a fast rate overfits soon, a slow one late: the runs of one program choose different epochs
    args += ["--vary", "train.learning_rate=0.05,0.005"]
    # a fixed base seed: without one, compare draws a seed, and with some seeds every run's
    # validation loss still fell at epoch 40, so no two chose different epochs (a flaky test)
    result = cli("compare", *args, "--seed", "3", "--out", tmp_path / "c", "--json")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(path.read_text()) for path in sorted((tmp_path / "c" / "results" / "small").glob("*.json"))]
    assert len(records) == 8
    for record in records:
        assert record["epochs_run"] >= 8  # the validation phase, from start_from on
        assert record["refit"] == {"epochs": max(6, record["best_epoch"]), "sequences": SEQUENCES}
    assert len({record["refit"]["epochs"] for record in records}) > 1


def test_resume_writes_the_outputs_of_a_refit_stopped_after_its_last_checkpoint(reference, tmp_path, cli):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    (run / "model.keras").unlink()
    (run / "metrics.json").unlink()
    (run / ".bilstm-run").touch()
    resumed = cli("train", "--resume", run, "--quiet")
    assert resumed.exit_code == 0, resumed.stderr
    ours, theirs = (json.loads((r / "metrics.json").read_text()) for r in (run, reference))
    assert ours["refit"] == {**theirs["refit"], "train_seconds": ours["refit"]["train_seconds"]}
    assert ours["selection"]["best_epoch"] == theirs["selection"]["best_epoch"] and (run / "model.keras").exists()
