"""The compiled training loop: equals a naive model.fit loop, is deterministic, stops early.

Runs under whichever backend the session selected (``make test`` runs it for both)."""

from __future__ import annotations

import numpy as np
import pytest

from bilstm_cli.backend import keras
from bilstm_cli.config.schema import DataConfig, ModelSettings
from bilstm_cli.data.batches import OnlineSource, make_batches
from bilstm_cli.data.generator import cumulative_sum_task
from bilstm_cli.data.spec import ModelSpec
from bilstm_cli.engine import for_backend
from bilstm_cli.engine.loop import FitCallbacks, FitPlan, NonFiniteLoss, fit
from bilstm_cli.model.build import build_model

SPEC = ModelSpec(1, 2)
TrainingEngine = for_backend().TrainingEngine

pytestmark = pytest.mark.usefixtures("cpu_device")


def fresh_model(seed: int = 3) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return build_model(ModelSettings(kind="bilstm", merge="concat", units=20), SPEC)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_fast_loop_matches_one_model_fit_per_sequence(jit_compile):
    """Issue 3: from identical weights and data, per-epoch losses agree within 1e-3 for 20 epochs."""
    source = OnlineSource(DataConfig(samples_per_epoch=1), batch_size=1, seed=5)
    model = fresh_model()
    initial = [v.numpy() for v in model.variables]
    engine = TrainingEngine(model, SPEC, jit_compile=jit_compile, steps_per_call=7)
    fast = fit(engine, source, FitPlan(epochs=20, log_every=20)).history

    naive_model = fresh_model(99)
    for variable, value in zip(naive_model.variables, initial):
        variable.assign(value)
    naive_model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(0.001), metrics=["accuracy"])
    naive_loss, naive_accuracy = [], []
    for epoch in range(20):
        data = source.epoch_dataset(epoch)
        logs = naive_model.fit([data.x, data.lengths.astype("int32")], data.y, batch_size=1, epochs=1, verbose=0)
        naive_loss.append(logs.history["loss"][0])
        naive_accuracy.append(logs.history["accuracy"][0])
    np.testing.assert_allclose(fast.loss, naive_loss, atol=1e-3)
    np.testing.assert_allclose(fast.accuracy, naive_accuracy, atol=1e-6)
    assert len(fast.loss) == 20 and len(set(np.round(fast.loss, 6))) > 10  # real, varying losses


def test_chunking_does_not_change_results():
    """Steps per call and log interval only change where the loop pauses, never the numbers."""
    histories = []
    for steps_per_call, log_every in ((5, 5), (16, 8)):
        source = OnlineSource(DataConfig(samples_per_epoch=4), batch_size=2, seed=1)
        engine = TrainingEngine(fresh_model(), SPEC, steps_per_call=steps_per_call)
        histories.append(fit(engine, source, FitPlan(epochs=20, log_every=log_every)).history.loss)
    assert histories[0] == histories[1]


def test_logged_rows_are_window_means_and_validation_points():
    source = OnlineSource(DataConfig(samples_per_epoch=2), batch_size=2, seed=2)
    validation = make_batches(cumulative_sum_task(50, 10, rng=np.random.default_rng(0)), 25)
    rows = []
    result = fit(
        TrainingEngine(fresh_model(), SPEC, steps_per_call=10),
        source,
        FitPlan(epochs=25, log_every=10),
        validation,
        FitCallbacks(on_log=rows.append),
    )
    assert [row.epoch for row in rows] == [10, 20, 25]
    history = result.history
    assert rows[1].loss == pytest.approx(np.mean(history.loss[10:20]))
    assert rows[2].accuracy == pytest.approx(np.mean(history.accuracy[20:25]))
    assert [i + 1 for i in history.logged()] == [10, 20, 25]
    assert rows[2].val_loss == history.val_loss[24] and 0 <= rows[2].val_accuracy <= 1


def test_early_stopping_restores_the_best_weights():
    source = OnlineSource(DataConfig(samples_per_epoch=8), batch_size=8, seed=3)
    validation = make_batches(cumulative_sum_task(64, 10, rng=np.random.default_rng(1)), 64)
    engine = TrainingEngine(fresh_model(), SPEC, learning_rate=0.3, steps_per_call=5)  # unstable on purpose
    plan = FitPlan(epochs=400, log_every=5, early_stopping_patience=15)
    result = fit(engine, source, plan, validation)
    assert result.stopped == "early-stopping" and result.epochs_run < 400
    best = np.nanmin(result.history.val_loss)
    assert result.best_epoch == result.history.epoch[int(np.nanargmin(result.history.val_loss))]
    assert engine.evaluate(validation)[0] == pytest.approx(best, rel=1e-5)


def test_non_finite_loss_names_the_first_bad_epoch():
    source = OnlineSource(DataConfig(samples_per_epoch=1), batch_size=1, seed=4)
    engine = TrainingEngine(fresh_model(), SPEC, learning_rate=1e38, steps_per_call=50)  # weights overflow
    with pytest.raises(NonFiniteLoss) as info:
        fit(engine, source, FitPlan(epochs=200, log_every=50))
    history = info.value.history
    assert info.value.epoch == len(history) + 1
    assert np.isfinite(history.loss).all()
    assert "learning rate" in str(info.value)


def test_dataset_shuffles_differ_per_epoch_but_repeat_per_seed():
    from bilstm_cli.data.batches import DatasetSource

    data = cumulative_sum_task(10, 4, rng=np.random.default_rng(0))
    source = DatasetSource(data, batch_size=4, seed=9)
    first, again = source.batches(0, 2), DatasetSource(data, 4, seed=9).batches(0, 2)
    assert np.array_equal(first.x, again.x)
    assert first.steps == 6  # 3 steps per epoch: 4 + 4 + 2 real sequences
    assert not np.array_equal(first.x[:3], first.x[3:])
    assert first.mask[2].sum() == 2 * 4  # last batch: 2 real sequences x 4 steps, 2 fillers
    assert sorted(first.x[:3][first.mask[:3, :, :1].astype(bool)[..., 0]][:, 0, 0].tolist()) == sorted(
        data.x[:, 0, 0].tolist()
    )


def test_class_weights_scale_the_loss():
    """A training step's loss is sum(weight[label] x cross-entropy) / labelled positions."""
    from bilstm_cli.inference.metrics import cross_entropy

    data = cumulative_sum_task(8, 10, rng=np.random.default_rng(2))
    model = fresh_model()
    probabilities = keras.ops.convert_to_numpy(model([data.x, data.lengths.astype("int32")], training=False))
    per_position = cross_entropy(probabilities.reshape(-1, 1), data.y.reshape(-1))
    weights = np.array([1.0, 3.0], np.float32)

    def first_step_loss(class_weights):
        engine = TrainingEngine(fresh_model(), SPEC, steps_per_call=1)
        return engine.train(make_batches(data, 8, class_weights=class_weights))[0, 0]

    unweighted, weighted = first_step_loss(None), first_step_loss(weights)
    assert unweighted == pytest.approx(per_position.mean(), rel=1e-5)
    assert weighted == pytest.approx((weights[data.y.reshape(-1)] * per_position).sum() / per_position.size, rel=1e-5)
    assert weighted > unweighted * 1.2  # class 1 makes up a good share of the steps: its weight shows


@pytest.mark.only_backend("tensorflow")
def test_xla_choice_follows_the_measured_crossover():
    from bilstm_cli.engine.tensorflow import use_xla

    assert use_xla("auto", "cpu", 1, 10)  # the tutorial's steps: XLA removes per-op overhead
    assert use_xla("auto", "cpu", 32, 10)
    assert not use_xla("auto", "cpu", 64, 100)  # large steps: a plain graph is faster
    assert not use_xla("auto", "gpu", 1, 10)  # cuDNN on GPU
    assert use_xla(True, "cpu", 64, 1000) and not use_xla(False, "cpu", 1, 10)


@pytest.mark.only_backend("jax")
@pytest.mark.parametrize("batch_size", [1, 4])
def test_repeats_trained_together_equal_repeats_trained_one_by_one(batch_size):
    """Issue 11: vmapped repeats keep their own weights, optimizer state and data stream."""
    from bilstm_cli.engine.jax import RepeatsEngine
    from bilstm_cli.engine.loop import fit_repeats

    seeds = [11, 12, 13]
    validation = make_batches(cumulative_sum_task(32, 10, rng=np.random.default_rng(7)), 32)
    plan = FitPlan(epochs=12, log_every=4)

    def source(seed):
        return OnlineSource(DataConfig(samples_per_epoch=batch_size), batch_size=batch_size, seed=seed)

    alone = []
    for seed in seeds:
        engine = TrainingEngine(fresh_model(seed), SPEC, steps_per_call=8)
        alone.append(fit(engine, source(seed), plan, validation).history)
    together_engine = RepeatsEngine(
        TrainingEngine(fresh_model(0), SPEC, steps_per_call=8), [fresh_model(s) for s in seeds]
    )
    together = [r.history for r in fit_repeats(together_engine, [source(s) for s in seeds], plan, validation)]
    for one, many in zip(alone, together):
        assert one.epoch == many.epoch
        np.testing.assert_allclose(many.loss, one.loss, rtol=0, atol=1e-6)
        np.testing.assert_allclose(many.val_loss, one.val_loss, rtol=0, atol=1e-6)
    assert not np.allclose(together[0].loss, together[1].loss)  # different seeds: different runs
