"""Your own data with no flags (issue 14): task auto, the dataset recipe, the .ts reader's edges."""

from __future__ import annotations

import json

import pytest
import yaml

from bilstm_cli.config.recipe import FILE_RECIPE
from bilstm_cli.data.io import read_dataset

from .conftest import ROOT, assert_clean_error, json_lines

EXAMPLE_TRAIN = ROOT / "examples" / "motions-train.ts"
EXAMPLE_TEST = ROOT / "examples" / "motions-test.ts"


def shown(cli, *args) -> dict:
    result = cli("config", "show", *args)
    assert result.exit_code == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_a_data_file_brings_the_recipe_and_the_generated_task_keeps_its_defaults(cli):
    recipe = shown(cli, "--data", EXAMPLE_TRAIN)
    for path, value in FILE_RECIPE.items():
        node = recipe
        for part in path.split("."):
            node = node[part]
        assert node == value, path
    generated = shown(cli)
    assert generated["train"]["epochs"] == 3000 and generated["train"]["learning_rate"] == 0.003
    assert generated["model"]["units"] == 20 and generated["train"]["early_stopping"]["enabled"] is False
    assert generated["data"]["task"] == "auto"


def test_what_the_user_sets_wins_over_the_recipe(cli):
    config = shown(cli, "--data", EXAMPLE_TRAIN, "--epochs", "7", "--set", "data.standardize=false", "--units", "9")
    assert config["train"]["epochs"] == 7 and config["data"]["standardize"] is False and config["model"]["units"] == 9
    assert config["train"]["learning_rate"] == 0.001  # not given: the recipe's
    with_validation = shown(cli, "--data", EXAMPLE_TRAIN, "--val-data", EXAMPLE_TEST)
    assert with_validation["data"]["validation_split"] == 0.0  # a validation file: no split


@pytest.mark.parametrize(
    ("content", "suffix", "task"),
    [
        ("sequence,step,x,y\n0,0,0.1,0\n0,1,0.7,1\n1,0,0.2,0\n1,1,0.3,0\n", ".csv", "per-step"),
        ("sequence,step,x,y\n0,0,0.1,a\n0,1,0.7,a\n1,0,0.2,b\n1,1,0.3,b\n", ".csv", "sequence"),
        ('{"x": [0.1, 0.2], "y": 1}\n{"x": [0.3], "y": 0}\n', ".jsonl", "sequence"),
        ('{"x": [0.1, 0.2], "y": [0, 1]}\n', ".jsonl", "per-step"),
    ],
)
def test_task_auto_reads_the_kind_of_labels_from_the_file(tmp_path, content, suffix, task):
    path = tmp_path / f"data{suffix}"
    path.write_text(content)
    assert read_dataset(str(path), task=None).task == task


def test_an_explicit_task_that_the_file_contradicts_is_still_a_clear_error(cli, tmp_path):
    result = cli("train", "--data", EXAMPLE_TRAIN, "--set", "data.task=per-step", "--out", tmp_path / "r")
    assert_clean_error(result, 1, "labels are one per sequence", "data.task: per-step")


@pytest.fixture(scope="module")
def no_flags_run(tmp_path_factory):
    """`bilstm train --data FILE` with nothing else, as a new user would run it."""
    from .conftest import run_bilstm

    run = tmp_path_factory.mktemp("recipe") / "run"
    result = run_bilstm("train", "--data", EXAMPLE_TRAIN, "--seed", "1", "--out", run, "--json")
    assert result.returncode == 0, result.stderr.decode()
    return run, json_lines(result.stdout.decode())


def test_training_a_file_with_no_flags_records_the_recipe(no_flags_run):
    run, events = no_flags_run
    metrics = json.loads((run / "metrics.json").read_text())
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["train"]["early_stopping"]["enabled"] and config["data"]["standardize"]
    assert config["train"]["folds"] == 5 and config["model"]["units"] == 64
    series = read_dataset(str(EXAMPLE_TRAIN)).size
    assert metrics["folds"]["k"] == 5 and metrics["final"]["validation_sequences"] == series  # all, out of fold
    assert 60 <= metrics["epochs_run"] <= 200 and metrics["final"]["val_accuracy"] >= 0.8  # easy classes
    assert "refit" not in metrics and not config["train"]["refit"]["enabled"]  # measured, and off
    assert sum(1 for event in events if event["event"] == "epoch") == metrics["epochs_run"]  # logged every epoch
    assert json.loads((run / "data.json").read_text())["task"] == "sequence"


def test_noisy_data_stops_early_and_keeps_the_best_weights(tmp_path):
    """Labels that are half noise: the validation loss turns up soon and training stops."""
    import numpy as np

    from .conftest import run_bilstm

    rng = np.random.default_rng(0)
    rows = []
    for i in range(80):
        label = "ab"[i % 2] if rng.random() < 0.6 else "ab"[rng.integers(2)]
        level = (i % 2) * 0.5
        rows.append(",".join(f"{v:.3f}" for v in rng.normal(level, 1.0, size=12)) + f":{label}")
    path = tmp_path / "noisy.ts"
    path.write_text("@problemName Noisy\n@univariate true\n@classLabel true a b\n@data\n" + "\n".join(rows) + "\n")
    result = run_bilstm("train", "--data", path, "--seed", "2", "--out", tmp_path / "run", "--quiet")
    assert result.returncode == 0, result.stderr.decode()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["stopped"] == "early-stopping" and metrics["epochs_run"] < 200  # every member stopped
    history = np.genfromtxt(tmp_path / "run" / "history-folds.csv", delimiter=",", names=True)
    for member in metrics["folds"]["members"]:  # each of the ensemble's 5 members, on its own fold
        own = history[history["fold"] == member["fold"]]
        best = int(own["epoch"][np.nanargmin(own["val_loss"])])
        assert member["best_epoch"] == best and member["epochs_run"] == max(best + 20, 60)  # patience 20, from 60
        assert member["val_loss"] == pytest.approx(np.nanmin(own["val_loss"]), rel=1e-5)  # best kept


def test_evaluate_and_predict_need_no_flags_either(no_flags_run, cli):
    run, _ = no_flags_run
    result = cli("evaluate", run, "--data", EXAMPLE_TEST, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["accuracy"] >= 0.8
    predicted = cli("predict", run, EXAMPLE_TEST)
    assert predicted.exit_code == 0 and predicted.stdout.startswith("sequence,class,p_walk,p_run,p_jump")


TS_HEADER = "@problemName Edge\n@univariate true\n@classLabel true a b\n"


def test_ts_percent_comments_are_accepted(tmp_path):
    path = tmp_path / "comments.ts"
    path.write_text(
        "% a comment, as the archive's tools allow\n%\n" + TS_HEADER + "@data\n% inside too\n1,2,3:a\n4,5:b\n"
    )
    dataset = read_dataset(str(path))
    assert dataset.size == 2 and dataset.classes == ["a", "b"] and list(dataset.lengths) == [3, 2]


def test_ts_regression_files_are_refused_for_what_they_are(cli, tmp_path):
    path = tmp_path / "regression.ts"
    path.write_text("@problemName Covid\n@univariate true\n@targetLabel true\n@data\n1,2,3:0.5\n")
    result = cli("train", "--data", path, "--out", tmp_path / "r")
    assert_clean_error(result, 1, "line 3", "@targetLabel true", "regression", "classifiers")


def test_ts_missing_values_are_an_error_naming_the_line(cli, tmp_path):
    path = tmp_path / "missing.ts"
    path.write_text(
        TS_HEADER.replace("@univariate true", "@missing true\n@univariate true") + "@data\n1,2:a\n3,?,4:b\n"
    )
    result = cli("train", "--data", path, "--out", tmp_path / "r")
    assert_clean_error(result, 1, "line 7", "dimension 0", "missing value", "impute")
