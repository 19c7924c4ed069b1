"""The toolbox: GRU and SimpleRNN cells, optimizers, learning-rate schedules, early-stopping
flags and the model summary, end to end through the command line."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from .conftest import assert_clean_error, json_lines

pytestmark = pytest.mark.usefixtures("cpu_device")


def history(run) -> list[dict]:
    with open(run / "history.csv") as handle:
        return list(csv.DictReader(handle))


def test_train_gru_saves_a_gru_model_that_predicts(cli, tiny, tmp_path):
    run = tmp_path / "gru"
    result = cli("train", *tiny(epochs=10, seed=1), "--cell", "gru", "--merge", "sum", "--out", run, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert "cell: gru" in (run / "config.yaml").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["variant"] == "bigru-sum"
    from bilstm_cli.model.build import load_model

    model = load_model(str(run / "model.keras"))
    assert type(model.get_layer("bigru_0").forward_layer).__name__ == "GRU"
    generated = cli("generate", "--samples", "2", "--timesteps", "5", "--seed", "4")
    predicted = cli("predict", run, "-", input=generated.stdout)
    assert predicted.exit_code == 0, predicted.stderr
    rows = predicted.stdout.strip().splitlines()
    assert rows[0] == "sequence,step,class,probability" and len(rows) == 1 + 2 * 5


def test_compare_varies_the_cell_with_readable_names(cli, tiny, tmp_path):
    out = tmp_path / "cmp"
    result = cli(
        "compare",
        *tiny(epochs=4, log_every=2),
        "--modes",
        "sum",
        "--vary",
        "model.cell=lstm,gru,rnn",
        "--repeats",
        "1",
        "--seed",
        "1",
        "--out",
        out,
        "--json",
        "--quiet",
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert "bilstm-sum cell=gru" in json.dumps(summary) and "bilstm-sum cell=rnn" in json.dumps(summary)


def test_a_bad_cell_names_the_key(cli):
    assert_clean_error(cli("config", "show", "--set", "model.cell=lstmx"), 2, "model.cell")


# ---------------------------------------------------------------------------- training controls


def test_optimizer_flags_reach_the_optimizer(cli, tiny, tmp_path, monkeypatch):
    from bilstm_cli.engine import session
    from bilstm_cli.engine.optimizers import OptimizerSettings

    seen = []
    real = session.optimizer_settings
    monkeypatch.setattr(session, "optimizer_settings", lambda *a: seen.append(real(*a)) or seen[-1])
    flags = ["--optimizer", "adamw", "--schedule", "cosine", "--set", "train.weight_decay=0.01"]
    flags += ["--set", "train.clipnorm=0.5", "--set", "train.cosine_alpha=0.1"]
    result = cli("train", *tiny(epochs=6, samples_per_epoch=8, seed=1), *flags, "--out", tmp_path / "r", "--quiet")
    assert result.exit_code == 0, result.stderr
    # 6 epochs x 2 steps of 4 sequences: the cosine decays over the whole run
    assert seen == [OptimizerSettings("adamw", 0.01, 0.5, "cosine", decay_steps=12, alpha=0.1)]
    seen.clear()
    assert cli("train", *tiny(epochs=2, seed=1), "--optimizer", "adamw", "--out", tmp_path / "d", "-q").exit_code == 0
    assert seen[0].weight_decay == 0.004  # Keras' AdamW default


def test_cosine_learning_rates_match_keras_cosine_decay(cli, tiny, tmp_path):
    from bilstm_cli.backend import keras

    run = tmp_path / "cosine"
    flags = ["--schedule", "cosine", "--learning-rate", "0.01", "--set", "train.cosine_alpha=0.2"]
    result = cli("train", *tiny(epochs=8, samples_per_epoch=12, seed=2), *flags, "--out", run, "--quiet")
    assert result.exit_code == 0, result.stderr
    rates = [float(row["learning_rate"]) for row in history(run)]
    decay = keras.optimizers.schedules.CosineDecay(0.01, decay_steps=8 * 3, alpha=0.2)
    # each epoch records the rate of its last step (3 steps per epoch)
    expected = [float(keras.ops.convert_to_numpy(decay(3 * epoch - 1))) for epoch in range(1, 9)]
    np.testing.assert_allclose(rates, expected, rtol=1e-5)


def test_plateau_lowers_the_learning_rate_when_validation_stalls(cli, tiny, tmp_path):
    run = tmp_path / "plateau"
    flags = ["--schedule", "plateau", "--learning-rate", "0.05", "--set", "train.plateau_patience=2"]
    flags += ["--set", "train.plateau_factor=0.5", "--json"]
    result = cli("train", *tiny(epochs=30, log_every=1, seed=3), *flags, "--out", run)
    assert result.exit_code == 0, result.stderr
    rows = history(run)
    rates = np.array([float(row["learning_rate"]) for row in rows])
    val = np.array([float(row["val_loss"]) for row in rows])
    assert rates[0] == pytest.approx(0.05) and rates[-1] < 0.05, "the rate was never lowered"
    best, since = np.inf, 0
    for epoch in range(1, len(rows) + 1):  # Keras' ReduceLROnPlateau, replayed on the history
        expected_next = rates[epoch - 1]
        if val[epoch - 1] < best:
            best, since = val[epoch - 1], epoch
        elif epoch - since >= 2:
            expected_next, since = rates[epoch - 1] * 0.5, epoch
        if epoch < len(rows):
            assert rates[epoch] == pytest.approx(expected_next, rel=1e-6), f"epoch {epoch + 1}"
    logged = [event["learning_rate"] for event in json_lines(result.stdout) if event["event"] == "epoch"]
    np.testing.assert_allclose(logged, rates, rtol=1e-6)  # the per-epoch rows show it too


def test_plateau_needs_validation_data(cli, tiny, tmp_path):
    result = cli("train", *tiny(epochs=2, validation_size=0), "--schedule", "plateau", "--out", tmp_path / "r")
    assert_clean_error(result, 2, "train.schedule=plateau needs validation data")


def test_early_stopping_flags(cli):
    def stopping(*flags):
        import yaml

        shown = yaml.safe_load(cli("config", "show", *flags).stdout)
        return shown["train"]["early_stopping"]

    assert stopping()["enabled"] is False
    assert stopping("--early-stopping") == {"enabled": True, "patience": 10, "min_delta": 0.0, "start_from": 0}
    assert stopping("--patience", "3")["enabled"] is True and stopping("--patience", "3")["patience"] == 3
    assert stopping("--patience", "3", "--no-early-stopping")["enabled"] is False
    assert stopping("--set", "train.early_stopping.enabled=true", "--no-early-stopping")["enabled"] is False
    assert_clean_error(cli("config", "show", "--patience", "0"), 2, "train.early_stopping.patience")


def test_model_summary_in_the_header_and_json(cli, tiny, tmp_path):
    result = cli(
        "train", *tiny(epochs=2, seed=1), "--cell", "rnn", "--direction", "backward", "--json", "--out", tmp_path / "r"
    )
    assert result.exit_code == 0, result.stderr
    finished = json_lines(result.stdout)[-1]
    summary = finished["metrics"]["model"]
    assert [layer["name"] for layer in summary["layers"]] == ["length_mask", "rnn_0", "align_0", "head"]
    # SimpleRNN, 6 units, 1 feature: 6 + 36 + 6; the head 6 + 1
    assert summary["layers"][1] == {"name": "rnn_0", "type": "SimpleRNN", "parameters": 48}
    assert summary["parameters"] == finished["metrics"]["parameters"] == 55
    assert (
        "model: length_mask LengthMask, rnn_0 SimpleRNN 48, align_0 ReverseTime, head Dense 7; 55 parameters"
        in result.stderr
    )


def test_plateau_state_resumes_like_an_uninterrupted_run():
    """Reduce-on-plateau per copy (two copies, two rates): a run stopped at epoch 22 (after a reduction) and resumed
    from its state and the checkpoint's plateau metadata equals an uninterrupted one."""
    from bilstm_cli.config.schema import DataConfig, ModelSettings
    from bilstm_cli.data.batches import OnlineSource, make_batches
    from bilstm_cli.data.generator import cumulative_sum_task
    from bilstm_cli.data.spec import ModelSpec
    from bilstm_cli.engine.loop import CopyProgress, FitPlan, PlateauState, fit

    from .engine_support import make_engine

    spec, small = ModelSpec(1, 2), ModelSettings(kind="bilstm", merge="sum", units=6)
    validation = make_batches(cumulative_sum_task(32, 8, rng=np.random.default_rng(0)), 32)

    def engine():
        return make_engine([(small, 2)], spec, [1, 2], (4, 8, 1), copy_streams=(0, 0), learning_rates=[0.05, 0.1])

    def source():
        return [OnlineSource(DataConfig(samples_per_epoch=4, timesteps=8), batch_size=4, seed=1)]

    def plan(epochs, start=0):
        return FitPlan(epochs=epochs, log_every=1, start_epoch=start, plateau_patience=2, plateau_factor=0.5)

    whole = fit(engine(), source(), plan(30), validation)
    first = engine()
    progress = [CopyProgress(), CopyProgress()]
    fit(first, source(), plan(22), validation, progress=progress)
    resumed = engine()
    resumed.load_state(first.state())
    restored = [
        CopyProgress(history=run.history, plateau=PlateauState.from_meta(json.loads(json.dumps(run.plateau.to_meta()))))
        for run in progress
    ]
    results = fit(resumed, source(), plan(30, start=22), validation, progress=restored)
    for copy in range(2):
        rates = whole[copy].history.learning_rate
        assert min(rates) < rates[0], f"copy {copy}: the rate was never lowered"
        assert results[copy].history.learning_rate == rates
        assert results[copy].history.loss == whole[copy].history.loss


def test_cell_and_optimizer_settings_are_part_of_the_program():
    from bilstm_cli.config.program import program_key
    from bilstm_cli.config.schema import Config

    def key(**sections):
        return program_key(Config.model_validate(sections))

    base = key()
    assert key(train={"learning_rate": 0.01}) == base  # an input of the program
    assert key(model={"kind": "lstm"}) == base  # a segment of the program
    for changed in (
        {"model": {"cell": "gru"}},
        {"train": {"optimizer": "adamw"}},
        {"train": {"clipnorm": 1.0}},
        {"train": {"schedule": "cosine"}},
        {"train": {"schedule": "plateau"}},
    ):
        assert key(**changed) != base, changed


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_copies_of_other_cells_with_schedules_train_as_they_do_alone(cell):
    """A GRU / SimpleRNN program of mixed variants, with AdamW, clipping, a cosine schedule and
    reduce-on-plateau per copy, gives every run the history (learning rates included) it has
    alone, within 1e-6."""
    from bilstm_cli.config.schema import DataConfig, ModelSettings
    from bilstm_cli.data.batches import OnlineSource, make_batches
    from bilstm_cli.data.generator import cumulative_sum_task
    from bilstm_cli.data.spec import ModelSpec
    from bilstm_cli.engine.loop import FitPlan, fit
    from bilstm_cli.engine.optimizers import OptimizerSettings, learning_rates_at_steps

    from .engine_support import history_difference, make_engine

    spec = ModelSpec(1, 2)
    variants = [
        ModelSettings(kind="bilstm", merge="concat", units=5, cell=cell),
        ModelSettings(kind="lstm", direction="backward", units=5, cell=cell),
    ]
    optimizer = OptimizerSettings("adamw", 0.01, 0.5, "cosine", decay_steps=24, alpha=0.1)
    validation = make_batches(cumulative_sum_task(32, 6, rng=np.random.default_rng(7)), 32)
    plan = FitPlan(epochs=12, log_every=1, plateau_patience=1, plateau_factor=0.5)
    rates = [0.3, 0.2]

    def source():
        return [OnlineSource(DataConfig(samples_per_epoch=8, timesteps=6), batch_size=4, seed=3)]

    together_engine = make_engine(
        [(v, 1) for v in variants],
        spec,
        [1, 2],
        (4, 6, 1),
        copy_streams=(0, 0),
        learning_rates=rates,
        optimizer=optimizer,
    )
    together = fit(together_engine, source(), plan, validation)
    # the cosine rates of every epoch's last step (2 steps an epoch); the plateau lowered some
    cosine = learning_rates_at_steps(optimizer, rates, np.arange(1, 13) * 2 - 1)
    lowered = [np.asarray(run.history.learning_rate) < 0.99 * cosine[:, copy] for copy, run in enumerate(together)]
    assert any(part.any() for part in lowered) and not all(part[0] for part in lowered)
    for copy, variant in enumerate(variants):
        engine = make_engine(
            [(variant, 1)], spec, [copy + 1], (4, 6, 1), learning_rates=[rates[copy]], optimizer=optimizer
        )
        alone = fit(engine, source(), plan, validation)[0]
        assert history_difference(alone.history, together[copy].history) < 1e-6
        np.testing.assert_allclose(alone.history.learning_rate, together[copy].history.learning_rate, rtol=1e-6)
