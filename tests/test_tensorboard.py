"""TensorBoard event files: what train writes (and compare's writer) reads back as history.csv."""

from __future__ import annotations

import math

import pytest

from bilstm_cli.runs.tensorboard import write_history_events

from .conftest import assert_clean_error
from .tensorboard_events import assert_events_match_history, csv_history, f32, read_run


def test_train_writes_every_epoch_as_it_goes(cli, tiny, tmp_path):
    result = cli("train", *tiny(epochs=12, log_every=5, learning_rate=0.01), "--seed", "3", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert_events_match_history(tmp_path / "run", learning_rate=0.01)
    scalars, _ = read_run(tmp_path / "run" / "tensorboard")
    assert sorted(scalars["val_loss"]) == [5, 10, 12]  # the logged rows, and the last epoch
    assert sorted(scalars["loss"]) == list(range(1, 13))


def test_nan_run_writes_the_good_epochs(cli, tiny, tmp_path):
    flags = tiny(epochs=400, samples_per_epoch=1, batch_size=1, log_every=1, learning_rate="1e38")
    result = cli("train", *flags, "--seed", "3", "--out", tmp_path / "run", "--quiet")
    assert_clean_error(result, 1, "NaN or infinite")
    scalars, _ = read_run(tmp_path / "run" / "tensorboard")
    rows = csv_history(tmp_path / "run")
    assert sorted(scalars["loss"]) == [int(r["epoch"]) for r in rows]  # the good epochs, nothing after
    assert all(math.isfinite(v) for v in scalars["loss"].values())


@pytest.mark.parametrize("switch", [["--no-tensorboard"], ["--set", "output.tensorboard=false"]])
def test_tensorboard_can_be_turned_off(cli, tiny, tmp_path, switch):
    result = cli("train", *tiny(epochs=4, log_every=2), *switch, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "run" / "model.keras").exists()
    assert not (tmp_path / "run" / "tensorboard").exists()
    assert "tensorboard: false" in (tmp_path / "run" / "config.yaml").read_text()


def test_write_history_events_for_compare(tmp_path):
    """compare's writer: one run per directory, from History.to_dict() (JSON: None where not logged)."""
    history = {
        "epoch": [1, 2, 3, 4],
        "loss": [0.9, 0.7, 0.61, 0.5],
        "accuracy": [0.5, 0.6, 0.7, 0.8],
        "val_loss": [None, 0.8, math.nan, 0.55],
        "val_accuracy": [None, 0.55, math.nan, 0.75],
        "elapsed": [0.1, 0.2, 0.3, 0.4],
    }
    directory = tmp_path / "tensorboard" / "bilstm-sum" / "repeat-000"
    write_history_events(directory, history, learning_rate=0.003, config_yaml="train:\n  epochs: 4\n")
    write_history_events(directory, history, learning_rate=0.003, config_yaml="train:\n  epochs: 4\n")  # rerun
    assert len(list(directory.glob("events.out.tfevents.*"))) == 1  # the first file was replaced
    scalars, texts = read_run(directory)
    assert scalars["loss"] == {1: f32(0.9), 2: f32(0.7), 3: f32(0.61), 4: f32(0.5)}
    assert scalars["val_loss"] == {2: f32(0.8), 4: f32(0.55)}
    assert scalars["val_accuracy"] == {2: f32(0.55), 4: f32(0.75)}
    assert scalars["learning_rate"] == {2: f32(0.003), 4: f32(0.003)}
    assert "elapsed" not in scalars
    assert texts["config/text_summary"] == "```yaml\ntrain:\n  epochs: 4\n```"
