"""k-fold ensembles (issue 23, ``train.folds``): k members trained as one program, each on all
but its fold and early-stopped on it; the saved model averages them; resumable; in compare,
tune and the recipe."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from bilstm_cli.commands import train as train_command
from bilstm_cli.data.folds import stratified_folds
from bilstm_cli.data.io import read_dataset

from .conftest import stop_request_at, write_series

SEQUENCES = 22
FOLDS = 4


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("folds")
    write_series(folder / "small.ts", SEQUENCES, 4)
    write_series(folder / "test.ts", 30, 5)
    return folder / "small.ts", folder / "test.ts"


def flags(data, *extra) -> list[str]:
    return [
        *("--data", data, "--seed", "3", "--units", "4", "--quiet", "--no-tensorboard"),
        *("--set", "train.epochs=40", "--set", "train.checkpoint_every=2", "--set", "train.jit_compile=false"),
        *("--set", f"train.folds={FOLDS}", "--set", "train.early_stopping.patience=3"),
        *("--set", "train.early_stopping.start_from=8", "--set", "train.learning_rate=0.05", *extra),
    ]


def rows(path) -> list[list[str]]:
    with open(path) as handle:
        return [row[:4] for row in csv.reader(handle)]


@pytest.fixture(scope="module")
def reference(files, tmp_path_factory):
    from click.testing import CliRunner

    from bilstm_cli.cli import main

    run = tmp_path_factory.mktemp("reference") / "run"
    train, test = files
    args = [str(a) for a in ["train", *flags(train), "--set", f"data.test_path={test}", "--out", run]]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return run


def test_folds_are_stratified_disjoint_and_cover_every_sequence(files):
    dataset = read_dataset(str(files[0]))
    folds = stratified_folds(dataset, FOLDS, seed=1)
    everything = np.sort(np.concatenate(folds))
    assert np.array_equal(everything, np.arange(SEQUENCES))
    sizes = [len(fold) for fold in folds]
    assert max(sizes) - min(sizes) <= 1
    for fold in folds:  # 11 of each class over 4 folds: 2 or 3 of each in every fold
        counts = np.bincount(dataset.y[fold], minlength=2)
        assert counts.min() >= 2 and counts.max() <= 3
    assert [list(f) for f in stratified_folds(dataset, FOLDS, seed=1)] == [list(f) for f in folds]
    assert [list(f) for f in stratified_folds(dataset, FOLDS, seed=2)] != [list(f) for f in folds]


def test_a_fold_run_trains_k_members_and_saves_their_average(reference, files, cli):
    metrics = json.loads((reference / "metrics.json").read_text())
    folds = metrics["folds"]
    assert folds["k"] == FOLDS and len(folds["members"]) == FOLDS
    assert sum(m["validation_sequences"] for m in folds["members"]) == SEQUENCES
    for member in folds["members"]:
        assert member["train_sequences"] == SEQUENCES - member["validation_sequences"]
        assert member["epochs_run"] >= 8 and member["best_epoch"] is not None
    assert len({m["seed"] for m in folds["members"]}) == FOLDS  # members start apart
    # the run's validation score pools the members' out-of-fold scores
    pooled = sum(m["val_accuracy"] * m["validation_sequences"] for m in folds["members"]) / SEQUENCES
    assert metrics["final"]["val_accuracy"] == pytest.approx(pooled)
    assert metrics["final"]["validation_sequences"] == SEQUENCES
    # history-folds.csv has every member's epochs; history.csv their mean
    member_rows = rows(reference / "history-folds.csv")
    assert member_rows[0] == ["fold", "epoch", "loss", "accuracy"]
    assert len(member_rows) == 1 + sum(m["epochs_run"] for m in folds["members"])
    assert len(rows(reference / "history.csv")) == 1 + max(m["epochs_run"] for m in folds["members"])

    # the saved model is the average of its members: the engine's test score is evaluate's
    evaluated = cli("evaluate", reference, "--data", files[1], "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    scored = json.loads(evaluated.stdout)
    assert scored["accuracy"] == pytest.approx(metrics["final"]["test_accuracy"], abs=1e-9)
    assert scored["loss"] == pytest.approx(metrics["final"]["test_loss"], rel=1e-5)


def test_runs_diff_shows_each_members_scores_under_its_fold(reference):
    from bilstm_cli.runs.catalog import read_entry, scores

    flat = scores(read_entry(reference))
    members = json.loads((reference / "metrics.json").read_text())["folds"]["members"]
    assert flat["folds.k"] == FOLDS
    for member in members:
        assert flat[f"folds.fold{member['fold']}.best_epoch"] == member["best_epoch"]


def test_the_saved_ensemble_averages_its_members_probabilities(reference, files):
    from bilstm_cli.backend import keras
    from bilstm_cli.model.build import load_model

    model = load_model(str(reference / "model.keras"))
    assert model.get_layer("ensemble") is not None
    dataset = read_dataset(str(files[1]))
    inputs = [dataset.x.astype("float32"), dataset.lengths.astype("int32")]
    heads = [model.get_layer(f"fold{m}_head").output for m in range(FOLDS)]
    members = keras.Model(model.inputs, heads)
    probabilities = np.asarray(model.predict(inputs, verbose=0))
    each = [np.asarray(p) for p in members.predict(inputs, verbose=0)]
    assert not np.allclose(each[0], each[1])  # distinct members
    np.testing.assert_allclose(probabilities, np.mean(each, axis=0), rtol=1e-6, atol=1e-7)


def test_a_fold_run_stopped_after_a_member_stopped_early_resumes_exactly(reference, files, tmp_path, cli, monkeypatch):
    """Stopped at a checkpoint after some members stopped early: they stay frozen with their
    best weights, the others go on, and every output equals the uninterrupted run's."""
    reference_meta = json.loads((reference / "metrics.json").read_text())["folds"]["members"]
    first_stop = min(m["epochs_run"] for m in reference_meta)
    last_stop = max(m["epochs_run"] for m in reference_meta)
    assert first_stop < last_stop  # the data and seed make members stop apart
    run = tmp_path / "run"
    train, test = files
    check = first_stop + 2  # the loop checks should_stop once per chunk of one epoch (epochs: log_every 1)
    with monkeypatch.context() as patch:
        patch.setattr(train_command, "StopRequest", stop_request_at(check))
        interrupted = cli("train", *flags(train), "--set", f"data.test_path={test}", "--out", run)
    assert interrupted.exit_code == 130, interrupted.stderr
    meta = json.loads(np.load(run / "checkpoint.npz")["meta"].tobytes().decode())
    assert not meta["finished"] and meta["epoch"] > first_stop
    assert any(member["stopped"] == "early-stopping" for member in meta["members"])

    resumed = cli("train", "--resume", run, "--quiet")
    assert resumed.exit_code == 0, resumed.stderr
    for name in ("history.csv", "history-folds.csv"):
        assert rows(run / name) == rows(reference / name)
    with np.load(run / "checkpoint.npz") as a, np.load(reference / "checkpoint.npz") as b:
        keys = [k for k in a.files if k.startswith("v")]
        assert keys and all(np.array_equal(a[k], b[k]) for k in keys)
    ours, theirs = (json.loads((r / "metrics.json").read_text()) for r in (run, reference))
    assert ours["folds"]["members"] == theirs["folds"]["members"]
    assert ours["final"]["test_loss"] == theirs["final"]["test_loss"]


def test_the_recipe_trains_five_fold_ensembles_unless_a_split_or_file_is_given(files, cli):
    train, test = files
    shown = yaml.safe_load(cli("config", "show", "--data", train).stdout)
    assert shown["train"]["folds"] == 5
    with_file = yaml.safe_load(cli("config", "show", "--data", train, "--val-data", test).stdout)
    assert with_file["train"]["folds"] == 0
    refit = yaml.safe_load(cli("config", "show", "--data", train, "--set", "train.refit.enabled=true").stdout)
    assert refit["train"]["folds"] == 0 and refit["train"]["refit"]["enabled"] is True
    split = yaml.safe_load(cli("config", "show", "--data", train, "--set", "data.validation_split=0.3").stdout)
    assert split["train"]["folds"] == 0
    # restating the recipe's own refit setting (off) keeps the folds
    off = yaml.safe_load(cli("config", "show", "--data", train, "--set", "train.refit.enabled=false").stdout)
    assert off["train"]["folds"] == 5


def test_folds_refuse_a_validation_file_too_few_sequences_and_the_refit(files, tmp_path, cli):
    train, test = files
    both = cli("train", "--data", train, "--val-data", test, "--set", "train.folds=3", "--out", tmp_path / "a")
    assert both.exit_code == 2 and "cannot take a validation file" in both.stderr
    many = cli("train", "--data", train, "--set", "train.folds=20", "--set", "train.epochs=1", "--out", tmp_path / "b")
    assert many.exit_code == 0, many.stderr  # 22 sequences: 20 folds of 1-2
    refit = cli("train", "--data", train, "--set", "train.folds=3", "--set", "train.refit.enabled=true")
    assert refit.exit_code == 2 and "choose one" in refit.stderr
    assert not (tmp_path / "a").exists()


def test_a_file_with_fewer_sequences_than_folds_gets_one_fold_each(tmp_path, cli):
    """The recipe's 5 folds on a 4-series file: 4 members, each validated on one series."""
    four = tmp_path / "four.ts"
    write_series(four, 4, 1)
    run = tmp_path / "run"
    trained = cli("train", "--data", four, "--set", "train.epochs=3", "--set", "model.units=4", "--out", run)
    assert trained.exit_code == 0, trained.stderr
    assert "train.folds=5: one fold per sequence" in trained.output
    members = json.loads((run / "metrics.json").read_text())["folds"]["members"]
    assert [(m["train_sequences"], m["validation_sequences"]) for m in members] == [(3, 1)] * 4


def test_folds_of_unequal_evaluation_steps_score_variable_length_mean_pooled_series(tmp_path, cli, monkeypatch):
    """Folds whose validation needs different numbers of evaluation batches are padded with
    filler steps; filler sequences have length 1, so a masked mean over them is not 0/0 (NaN)."""
    from bilstm_cli.data import prepare

    monkeypatch.setattr(prepare, "EVALUATION_BATCH", 5)  # folds of 5 series: 1 batch and a filler step; of 6: 2
    data = tmp_path / "ragged.ts"
    write_series(data, SEQUENCES, 7, variable=True)
    run = tmp_path / "run"
    args = ["--data", data, "--set", f"train.folds={FOLDS}", "--set", "model.pooling=mean", "--set", "train.epochs=3"]
    trained = cli("train", *args, "--set", "model.units=4", "--out", run, "--quiet")
    assert trained.exit_code == 0, trained.stderr
    members = json.loads((run / "metrics.json").read_text())["folds"]["members"]
    assert all(np.isfinite(m["val_loss"]) for m in members)
    assert {m["validation_sequences"] for m in members} == {5, 6}


def test_compare_scores_each_ensemble_out_of_fold_or_on_the_test_file(files, tmp_path, cli):
    train, test = files
    dropped = ("--seed", "3", "--quiet", "--units", "4", "--no-tensorboard")
    settings = [f for f in flags(train)[2:] if f not in dropped]
    args = ["--data", train, "--modes", "sum,ave", "--repeats", "2", "--set", "model.units=4", *settings]
    result = cli("compare", *args, "--seed", "3", "--out", tmp_path / "c", "--json")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "c" / "results" / "small").glob("*.json"))]
    assert len(records) == 4
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["datasets"][0]["out_of_fold"] is True  # the table says so, not "validation split"
    for record in records:
        members = record["folds"]["members"]
        assert record["folds"]["k"] == FOLDS and record["final"]["split"] == "validation"
        pooled = sum(m["val_accuracy"] * m["validation_sequences"] for m in members) / SEQUENCES
        assert record["final"]["accuracy"] == pytest.approx(pooled)

    # one variant, one repeat, with a test file: its record is the train run's (same seed)
    config = tmp_path / "datasets.yaml"
    config.write_text(
        yaml.safe_dump({"compare": {"datasets": [{"name": "small", "train": str(train), "test": str(test)}]}})
    )
    single = ["--config", config, "--modes", "concat", "--repeats", "1"]
    compared = cli("compare", *single, "--set", "model.units=4", *settings, "--seed", "3", "--out", tmp_path / "t")
    assert compared.exit_code == 0, compared.stderr
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "t" / "results" / "small").glob("*.json")]
    assert record["final"]["split"] == "test"
    assert json.loads((tmp_path / "t" / "summary.json").read_text())["datasets"][0]["out_of_fold"] is False
    trained = cli("train", *flags(train), "--set", f"data.test_path={test}", "--out", tmp_path / "r")
    assert trained.exit_code == 0, trained.stderr
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert record["final"]["accuracy"] == pytest.approx(metrics["final"]["test_accuracy"], abs=1e-6)
    assert record["final"]["loss"] == pytest.approx(metrics["final"]["test_loss"], rel=1e-5)


def test_a_tune_trial_is_scored_by_its_ensemble_out_of_fold(files, tmp_path, cli):
    import pandas as pd

    train, test = files
    common = [
        *("--data", train, "--epochs", "12", "--seed", "3", "--set", "model.units=4", "--set", f"train.folds={FOLDS}"),
        *("--set", "train.early_stopping.start_from=8", "--set", "train.early_stopping.patience=3"),
        *("--set", "train.jit_compile=false", "--set", "train.learning_rate=0.05"),
    ]
    search = ["--search", "model.merge=choice:sum,concat", "--sampler", "grid", "--trials", "2", "--pruner", "none"]
    # with a test file the search trains on the whole training file (else it holds a part out)
    confirm = ["--test-data", test, "--top-k", "1", "--confirm-repeats", "2"]
    tuned = cli("tune", *common, *search, *confirm, "--out", tmp_path / "t")
    assert tuned.exit_code == 0, tuned.stderr
    trials = pd.read_csv(tmp_path / "t" / "trials.csv")
    assert list(trials["state"]) == ["complete", "complete"]
    for _, trial in trials.iterrows():
        merge = json.loads(trial["params"])["model.merge"]
        run = tmp_path / merge
        trained = cli("train", *common, "--merge", merge, "--out", run, "--quiet")
        assert trained.exit_code == 0, trained.stderr
        metrics = json.loads((run / "metrics.json").read_text())
        assert trial["score"] == pytest.approx(metrics["final"]["val_loss"], rel=1e-5)  # trials.csv: 6 digits


def test_a_streamed_file_trains_one_model_on_the_split_with_a_note(tmp_path, cli):
    """Folds need the file in memory: the recipe's folds do not turn a file larger than
    data.memory_limit into an error, the run trains one model as before and says so."""
    data = tmp_path / "big.csv"
    generated = cli(
        "generate", "--samples", "300", "--timesteps", "10", "--task", "sequence", "--seed", "1", "-o", data
    )
    assert generated.exit_code == 0, generated.stderr
    run = tmp_path / "run"
    trained = cli("train", "--data", data, "--set", "data.memory_limit=20KB", "--epochs", "2", "--out", run)
    assert trained.exit_code == 0, trained.stderr
    assert "train.folds=5 does not apply" in trained.output and "streamed" in trained.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert "folds" not in metrics  # one model, validated on the split (a streamed file's: whole chunks)
    assert 0 < metrics["final"]["validation_sequences"] < 300


def test_a_comparisons_plan_counts_each_ensembles_members_against_runs_per_program(files):
    """4 variants x 10 repeats of 5-fold ensembles, 20 models a program: 4 runs (20 models) per
    job, one repeat of each variant, so 10 jobs; without folds 20 runs a job, 2 jobs."""
    from bilstm_cli.compare.plan import comparison_datasets, plan_jobs, run_config, with_recipe
    from bilstm_cli.config.resolve import resolve_config
    from bilstm_cli.config.variants import parse_variants

    for folds, expected_jobs, runs_per_job in ((5, 10, 4), (0, 2, 20)):
        config = resolve_config(None, [f"train.folds={folds}"], {"data.train_path": str(files[0])})
        datasets = [with_recipe(config, d) for d in comparison_datasets(config)]
        variants = parse_variants(["bilstm-sum", "bilstm-mul", "bilstm-ave", "bilstm-concat"], None, [])
        configs = {(d.name, v.name): run_config(config, d, v) for d in datasets for v in variants}
        assert {c.train.folds for c in configs.values()} == {folds}
        jobs = plan_jobs(configs, datasets, variants, 10, config.compare.runs_per_program)
        assert len(jobs) == expected_jobs
        assert all(sum(len(part.repeats) for part in job.parts) == runs_per_job for job in jobs)
