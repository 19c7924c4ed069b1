"""Issue 6: your own sequences - multi-feature, variable length, many classes, one label per
sequence, the UEA/UCR .ts format, standardisation, class imbalance, early stopping."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from bilstm_cli.data.dataset import Dataset
from bilstm_cli.data.io import read_dataset, write_dataset
from bilstm_cli.data.prepare import stratified_split

from .conftest import assert_clean_error, json_lines, tiny_flags

FAST = tiny_flags(
    epochs=None, samples_per_epoch=None, batch_size=None, validation_size=None, units=8, log_every=5, seed=1
)

TS_FILE = """# a small multivariate, variable-length archive file
@problemName Motions
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength false
@classLabel true walk run jump
@data
{rows}
"""


def motions(count: int, seed: int) -> tuple[str, list[str]]:
    """Series whose class is readable from the level of the first dimension."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    names = ["walk", "run", "jump"]
    for i in range(count):
        label = names[i % 3]
        length = int(rng.integers(5, 12))
        first = rng.normal(loc=3 * (i % 3), size=length)
        second = rng.normal(size=length)
        rows.append(",".join(f"{v:.3f}" for v in first) + ":" + ",".join(f"{v:.3f}" for v in second) + f":{label}")
        labels.append(label)
    return TS_FILE.format(rows="\n".join(rows)), labels


def test_ts_reader_variable_length_multivariate_names(tmp_path):
    text, labels = motions(9, 0)
    (tmp_path / "m.ts").write_text(text)
    data = read_dataset(str(tmp_path / "m.ts"))
    assert data.task == "sequence" and data.features == 2 and data.variable_length
    assert data.classes == ["walk", "run", "jump"]  # declared order
    assert [data.classes[k] for k in data.y] == labels
    first_row = text.split("@data\n")[1].splitlines()[0]
    first_values = [float(v) for v in first_row.split(":")[0].split(",")]
    assert data.lengths[0] == len(first_values)
    np.testing.assert_allclose(data.x[0, : data.lengths[0], 0], first_values, rtol=1e-6)
    assert (data.x[0, data.lengths[0] :] == 0).all()


@pytest.fixture(scope="module")
def ts_run(tmp_path_factory):
    from click.testing import CliRunner

    from bilstm_cli.cli import main

    folder = tmp_path_factory.mktemp("ts")
    train_text, _ = motions(60, 1)
    test_text, _ = motions(15, 2)
    (folder / "train.ts").write_text(train_text)
    (folder / "test.ts").write_text(test_text)
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(folder / "train.ts"),
            "--set",
            "data.task=sequence",
            "--set",
            "data.standardize=true",
            "--set",
            "data.validation_split=0.2",
            "--epochs",
            "40",
            "--batch-size",
            "8",
            *FAST,
            "--out",
            str(folder / "run"),
            "--quiet",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    return folder


def test_sequence_classification_from_ts_end_to_end(ts_run, cli):
    folder = ts_run
    spec = json.loads((folder / "run" / "data.json").read_text())
    assert spec == {
        "task": "sequence",
        "features": 2,
        "num_classes": 3,
        "classes": ["walk", "run", "jump"],
        "timesteps": spec["timesteps"],
        "standardized": True,
    }
    report = json.loads(cli("evaluate", folder / "run", "--data", folder / "test.ts", "--json").stdout)
    assert report["sequences"] == 15 and report["positions"] == 15
    assert set(report["per_class"]) == {"walk", "run", "jump"}
    assert report["accuracy"] >= 0.8  # the classes differ by a level shift of 3 standard deviations
    assert report["macro_f1"] == pytest.approx(np.mean([c["f1"] for c in report["per_class"].values()]))
    lines = cli("predict", folder / "run", folder / "test.ts").stdout.splitlines()
    assert lines[0] == "sequence,class,p_walk,p_run,p_jump" and len(lines) == 16
    # predict's classes are the ones evaluate scored
    truth = read_dataset(str(folder / "test.ts"))
    predicted = [line.split(",")[1] for line in lines[1:]]
    assert np.mean([p == truth.classes[y] for p, y in zip(predicted, truth.y)]) == pytest.approx(report["accuracy"])
    records = json_lines(cli("predict", folder / "run", folder / "test.ts", "--format", "jsonl").stdout)
    assert records[0]["classes"] == ["walk", "run", "jump"] and records[0]["class"] in {"walk", "run", "jump"}


def test_standardisation_is_fitted_on_training_data_and_saved_in_the_model(ts_run):
    from bilstm_cli.data.prepare import stratified_split
    from bilstm_cli.model.build import load_model

    model = load_model(str(ts_run / "run" / "model.keras"))
    layer = model.get_layer("standardize")
    everything = read_dataset(str(ts_run / "train.ts"))
    seed = json.loads((ts_run / "run" / "metrics.json").read_text())["seed"]
    train, _ = stratified_split(everything, 0.2, seed)  # the run's split: 80% of the sequences
    held = np.asarray(layer.mean).ravel()
    assert held == pytest.approx(train.x[train.step_mask()].mean(axis=0), abs=1e-5)
    assert held != pytest.approx(everything.x[everything.step_mask()].mean(axis=0), abs=1e-5)  # not all of it


def test_unseen_label_is_refused(ts_run, cli, tmp_path):
    text = TS_FILE.replace("walk run jump", "walk run jump swim").format(rows="1,2,3:1,2,3:swim")
    (tmp_path / "swim.ts").write_text(text)
    result = cli("evaluate", ts_run / "run", "--data", tmp_path / "swim.ts")
    assert_clean_error(result, 1, "'swim' was never seen in training")


def test_per_step_file_for_a_sequence_model_is_refused(ts_run, cli, tmp_path):
    (tmp_path / "steps.jsonl").write_text('{"x": [[0.1, 0.2], [0.3, 0.4]], "y": ["walk", "run"]}\n')
    result = cli("evaluate", ts_run / "run", "--data", tmp_path / "steps.jsonl")
    assert_clean_error(result, 1, "labels are given per step", "one label per sequence")


def rare_events(count: int, seed: int) -> Dataset:
    """Per-step labels: 'event' only where the first feature spikes (a rare class)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(8, 20, size=count)
    x = np.zeros((count, 20, 3), np.float32)
    y = np.zeros((count, 20), np.int64)
    for i, length in enumerate(lengths):
        x[i, :length] = rng.normal(size=(length, 3))
        spikes = rng.random(length) < 0.08
        x[i, :length, 0][spikes] += 6
        y[i, :length][spikes] = 1
    return Dataset(x, y, lengths, ["calm", "event"])


def test_rare_events_per_step_with_class_weights_and_early_stopping(cli, tmp_path):
    write_dataset(rare_events(120, 0), str(tmp_path / "train.npz"))
    write_dataset(rare_events(40, 1), str(tmp_path / "val.jsonl"))
    write_dataset(rare_events(40, 2), str(tmp_path / "test.csv"))
    result = cli(
        "train",
        "--data",
        tmp_path / "train.npz",
        "--val-data",
        tmp_path / "val.jsonl",
        "--epochs",
        "300",
        "--batch-size",
        "16",
        "--set",
        "train.class_weight=balanced",
        "--set",
        "train.early_stopping={enabled: true, patience: 15}",
        "--learning-rate",
        "0.01",
        *FAST,
        "--out",
        tmp_path / "run",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    finished = json_lines(result.stdout)[-1]["metrics"]
    assert finished["stopped"] == "early-stopping" and finished["epochs_run"] < 300
    assert finished["best_epoch"] is not None
    report = json.loads(cli("evaluate", tmp_path / "run", "--data", tmp_path / "test.csv", "--json").stdout)
    assert set(report["per_class"]) == {"calm", "event"}
    assert report["per_class"]["event"]["recall"] >= 0.7  # the rare class is found, not ignored
    assert report["per_class"]["event"]["support"] < report["per_class"]["calm"]["support"] / 5
    predicted = cli("predict", tmp_path / "run", tmp_path / "test.csv").stdout.splitlines()
    assert predicted[0] == "sequence,step,class,probability"
    assert {line.split(",")[2] for line in predicted[1:]} <= {"calm", "event"}
    assert len(predicted) - 1 == int(rare_events(40, 2).lengths.sum())  # real steps only, no padding


def test_stratified_split_keeps_class_shares():
    labels = np.array([0] * 80 + [1] * 20)
    data = Dataset(np.zeros((100, 3, 1), np.float32), labels, np.full(100, 3))
    train, validation = stratified_split(data, 0.25, seed=3)
    assert validation.size == 25 and train.size == 75
    assert (validation.y == 1).sum() == 5 and (train.y == 1).sum() == 15
    again = stratified_split(data, 0.25, seed=3)[1]
    assert np.array_equal(validation.y, again.y)


def test_saved_config_records_the_data_settings(ts_run):
    config = yaml.safe_load((ts_run / "run" / "config.yaml").read_text())
    assert config["data"]["task"] == "sequence" and config["data"]["standardize"] is True
    assert config["data"]["train_path"].endswith("train.ts")
