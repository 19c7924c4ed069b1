"""The engine and its epoch loop: equal to Keras' own training, chunking-independent, stops
early per copy, and trains many copies exactly as it trains each one alone.

Runs under whichever backend the session selected (``make test`` runs it for both)."""

from __future__ import annotations

import numpy as np
import pytest

from bilstm_cli.backend import keras
from bilstm_cli.config.schema import DataConfig, ModelSettings
from bilstm_cli.data.batches import OnlineSource, make_batches
from bilstm_cli.data.generator import cumulative_sum_task
from bilstm_cli.data.spec import ModelSpec
from bilstm_cli.engine.loop import FitCallbacks, FitPlan, NonFiniteLoss, fit
from bilstm_cli.engine.optimizers import OptimizerSettings

from .engine_support import history_difference, keras_step, keras_twin, make_engine

SPEC = ModelSpec(1, 2)
CONCAT = ModelSettings(kind="bilstm", merge="concat", units=20)
SMALL = ModelSettings(kind="bilstm", merge="sum", units=6)

pytestmark = pytest.mark.usefixtures("cpu_device")


def online(samples: int, batch: int, seed: int) -> OnlineSource:
    return OnlineSource(DataConfig(samples_per_epoch=samples), batch_size=batch, seed=seed)


def test_training_matches_one_keras_model_fit_per_sequence():
    """Issue 3's protocol: from identical weights and data, per-epoch losses equal Keras' own
    ``model.fit`` (Adam, binary cross-entropy), one sequence per epoch, within 1e-5."""
    source = online(1, 1, seed=5)
    engine = make_engine([(CONCAT, 1)], SPEC, [3], (1, 10, 1), steps_per_call=7)
    naive = keras_twin(engine, 0, CONCAT)  # the initial weights, before training
    result = fit(engine, [source], FitPlan(epochs=20, log_every=20))[0]

    naive.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(0.001), metrics=["accuracy"])
    naive_loss, naive_accuracy = [], []
    for epoch in range(20):
        data = source.epoch_dataset(epoch)
        logs = naive.fit([data.x, data.lengths.astype("int32")], data.y, batch_size=1, epochs=1, verbose=0)
        naive_loss.append(logs.history["loss"][0])
        naive_accuracy.append(logs.history["accuracy"][0])
    np.testing.assert_allclose(result.history.loss, naive_loss, rtol=0, atol=1e-5)
    np.testing.assert_allclose(result.history.accuracy, naive_accuracy, atol=1e-6)
    assert len(set(np.round(result.history.loss, 6))) > 10  # real, varying losses


@pytest.mark.parametrize(
    "optimizer",
    [
        OptimizerSettings("adam"),
        OptimizerSettings("adamw", weight_decay=0.05),
        OptimizerSettings("sgd", clipnorm=0.1),
        OptimizerSettings("rmsprop"),
        OptimizerSettings("adamw", weight_decay=0.01, clipnorm=0.05, schedule="cosine", decay_steps=2, alpha=0.3),
    ],
    ids=lambda o: o.name + ("-clip" if o.clipnorm else "") + ("-cosine" if o.schedule == "cosine" else ""),
)
def test_update_rules_equal_keras_optimizers(optimizer):
    """Each copy's weights after 3 steps equal a Keras model trained by the Keras optimizer
    of the same name and settings (two copies, two learning rates, one program)."""
    data = cumulative_sum_task(12, 6, rng=np.random.default_rng(0))
    batches = make_batches(data, 4)
    rates = [0.01, 0.03]
    engine = make_engine(
        [(SMALL, 2)], SPEC, [1, 2], (4, 6, 1), copy_streams=(0, 0), learning_rates=rates, optimizer=optimizer
    )
    twins = [keras_twin(engine, copy, SMALL) for copy in range(2)]
    initial = twins[0].get_weights()
    engine.train([batches])
    keras_class = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }[optimizer.name]
    for copy, twin in enumerate(twins):
        options = {"learning_rate": rates[copy]}
        if optimizer.schedule == "cosine":
            options["learning_rate"] = keras.optimizers.schedules.CosineDecay(
                rates[copy], optimizer.decay_steps, alpha=optimizer.alpha
            )
        if optimizer.clipnorm:
            options["clipnorm"] = optimizer.clipnorm
        if optimizer.name == "adamw":
            options["weight_decay"] = optimizer.weight_decay
        keras_optimizer = keras_class(**options)
        for step in range(batches.steps):
            arrays = (batches.x[step], batches.lengths[step], batches.y[step], batches.mask[step])
            keras_step(twin, keras_optimizer, SPEC, *arrays)
        trained = keras_twin(engine, copy, SMALL)
        for ours, theirs in zip(trained.get_weights(), twin.get_weights()):
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-5)
    moved = [np.abs(a - b).max() for a, b in zip(keras_twin(engine, 0, SMALL).get_weights(), initial)]
    assert max(moved) > 1e-3  # the updates were real, not a trivial equality


def test_chunking_does_not_change_results():
    """Steps per call and log interval only change where the loop pauses, never the numbers."""
    histories = []
    for steps_per_call, log_every in ((5, 5), (16, 8)):
        engine = make_engine([(SMALL, 1)], SPEC, [1], (2, 10, 1), steps_per_call=steps_per_call)
        histories.append(fit(engine, [online(4, 2, 1)], FitPlan(epochs=20, log_every=log_every))[0].history.loss)
    assert histories[0] == histories[1]


def test_logged_rows_are_window_means_and_validation_points():
    validation = make_batches(cumulative_sum_task(50, 10, rng=np.random.default_rng(0)), 25)
    rows = []
    engine = make_engine([(SMALL, 1)], SPEC, [1], (2, 10, 1), steps_per_call=10)
    result = fit(
        engine, [online(2, 2, 2)], FitPlan(epochs=25, log_every=10), validation, FitCallbacks(on_log=rows.append)
    )[0]
    assert [row.epoch for row in rows] == [10, 20, 25]
    history = result.history
    assert rows[1].loss == pytest.approx(np.mean(history.loss[10:20]))
    assert rows[2].accuracy == pytest.approx(np.mean(history.accuracy[20:25]))
    assert [i + 1 for i in history.logged()] == [10, 20, 25]
    assert rows[2].val_loss == history.val_loss[24]
    assert rows[2].val_loss == pytest.approx(engine.evaluate(validation)[0, 0])


def test_early_stopping_restores_the_best_weights():
    validation = make_batches(cumulative_sum_task(64, 10, rng=np.random.default_rng(1)), 64)
    engine = make_engine([(SMALL, 1)], SPEC, [3], (8, 10, 1), learning_rates=[0.3], steps_per_call=5)
    plan = FitPlan(epochs=400, log_every=5, early_stopping_patience=15)
    result = fit(engine, [online(8, 8, 3)], plan, validation)[0]
    assert result.stopped == "early-stopping" and result.epochs_run < 400
    best = np.nanmin(result.history.val_loss)
    assert result.best_epoch == result.history.epoch[int(np.nanargmin(result.history.val_loss))]
    assert engine.evaluate(validation)[0, 0] == pytest.approx(best, rel=1e-5)


def test_a_copy_that_stops_early_freezes_while_the_others_go_on():
    """Early stopping per copy: each copy of one program stops, and keeps its best weights,
    exactly where it stops when trained alone."""
    validation = make_batches(cumulative_sum_task(64, 10, rng=np.random.default_rng(1)), 64)
    plan = FitPlan(epochs=150, log_every=5, early_stopping_patience=15)
    seeds, rates = [3, 4, 5], [0.3, 0.003, 0.2]
    together_engine = make_engine(
        [(SMALL, 3)], SPEC, seeds, (8, 10, 1), learning_rates=rates, freezable=True, steps_per_call=5
    )
    together = fit(together_engine, [online(8, 8, s) for s in seeds], plan, validation)
    assert {r.stopped for r in together} == {"early-stopping", None}  # some stop, one goes on
    final = together_engine.evaluate(validation)[:, 0]
    engine = make_engine([(SMALL, 1)], SPEC, [seeds[0]], (8, 10, 1), steps_per_call=5)
    for copy, (seed, rate) in enumerate(zip(seeds, rates)):
        engine.restart([seed], [rate])  # the same compiled program, another run
        alone = fit(engine, [online(8, 8, seed)], plan, validation)[0]
        assert (alone.stopped, alone.epochs_run, alone.best_epoch) == (
            together[copy].stopped,
            together[copy].epochs_run,
            together[copy].best_epoch,
        )
        assert history_difference(alone.history, together[copy].history) < 1e-6
        assert engine.evaluate(validation)[0, 0] == pytest.approx(final[copy], abs=1e-6)


def test_non_finite_loss_names_the_first_bad_epoch():
    engine = make_engine([(SMALL, 1)], SPEC, [4], (1, 10, 1), learning_rates=[1e38], steps_per_call=50)
    with pytest.raises(NonFiniteLoss) as info:
        fit(engine, [online(1, 1, 4)], FitPlan(epochs=200, log_every=50))
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
    engine = make_engine([(CONCAT, 1)], SPEC, [3], (8, 10, 1), steps_per_call=1)
    model = keras_twin(engine, 0, CONCAT)
    probabilities = keras.ops.convert_to_numpy(model([data.x, data.lengths.astype("int32")], training=False))
    per_position = cross_entropy(probabilities.reshape(-1, 1), data.y.reshape(-1))
    weights = np.array([1.0, 3.0], np.float32)

    def first_step_loss(class_weights):
        fresh = make_engine([(CONCAT, 1)], SPEC, [3], (8, 10, 1), steps_per_call=1)
        terms = fresh.train([make_batches(data, 8, class_weights=class_weights)])[0, 0]
        return terms[0] / terms[1]

    unweighted, weighted = first_step_loss(None), first_step_loss(weights)
    assert unweighted == pytest.approx(per_position.mean(), rel=1e-5)
    assert weighted == pytest.approx((weights[data.y.reshape(-1)] * per_position).sum() / per_position.size, rel=1e-5)
    assert weighted > unweighted * 1.2  # class 1 makes up a good share of the steps: its weight shows


@pytest.mark.only_backend("tensorflow")
def test_xla_is_a_choice_and_on_by_default_only_for_long_loops_without_sequence_outputs():
    from bilstm_cli.engine.network import Trunk
    from bilstm_cli.engine.tensorflow import use_xla

    final_states = Trunk("lstm", 20, 1, 1, 2, "sequence")  # one layer, one label per sequence
    per_step, stacked = Trunk("lstm", 20, 1, 1, 2, "per-step"), Trunk("lstm", 20, 2, 1, 2, "sequence")
    assert use_xla("auto", "cpu", 64, 100, final_states)  # a while loop without outputs to collect
    assert not use_xla("auto", "cpu", 1, 10, final_states)  # unrolled: a plain graph is faster
    # ... except for one run long enough to earn back the compile (a large file's epoch)
    assert use_xla("auto", "cpu", 32, 10, per_step, copies=1, total_steps=25_000)
    assert not use_xla("auto", "cpu", 32, 10, per_step, copies=20, total_steps=25_000)  # the card's programs
    assert not use_xla("auto", "cpu", 32, 10, per_step, copies=1, total_steps=1000)  # the tutorial's 1000 steps
    assert not use_xla("auto", "cpu", 64, 1000, per_step, copies=1, total_steps=25_000)  # a while loop collecting
    assert not use_xla("auto", "cpu", 64, 100, per_step) and not use_xla("auto", "cpu", 64, 100, stacked)
    assert use_xla(True, "cpu", 64, 1000, per_step) and not use_xla(False, "cpu", 64, 100, final_states)


@pytest.mark.only_backend("tensorflow")
def test_evaluation_is_xla_for_stacked_copies_on_a_cpu_unless_told_otherwise():
    from bilstm_cli.engine.tensorflow import use_xla_in_evaluation

    assert use_xla_in_evaluation("auto", False, "cpu", 10, 20)  # the card's programs: a graph trains
    assert not use_xla_in_evaluation("auto", False, "cpu", 10, 1)  # one run: evaluation follows training
    assert not use_xla_in_evaluation("auto", False, "gpu", 10, 20)  # measured on CPUs only
    assert not use_xla_in_evaluation("auto", False, "cpu", 100, 20)  # a while loop (not measured)
    assert not use_xla_in_evaluation(False, False, "cpu", 10, 20)  # an explicit false: nothing is XLA
    assert use_xla_in_evaluation("auto", True, "gpu", 100, 1) and use_xla_in_evaluation(True, True, "cpu", 10, 1)


@pytest.mark.only_backend("tensorflow")
def test_a_comparison_records_xla_evaluation_and_scores_as_the_graph_does(tmp_path):
    """Stacked copies evaluate under XLA (fused gates) and score what a plain graph scores."""
    from bilstm_cli.compare.execute import job_data
    from bilstm_cli.config.resolve import resolve_config
    from bilstm_cli.device import select_device
    from bilstm_cli.engine.session import TrainingSession

    settings = ["train.epochs=4", "data.validation_size=64", "model.units=8", "train.seed=3"]
    scores = {}
    for setting in ("auto", "false"):
        config = resolve_config(assignments=[*settings, f"train.jit_compile={setting}"])
        data = job_data("generated", config, 3, None, {})
        session = TrainingSession([config, config], [3, 4], data, select_device("cpu"))
        assert session.evaluation_xla == (setting == "auto") and not session.jit_compile
        session.compile()
        scores[setting] = session.engine.evaluate(session.validation)
    np.testing.assert_allclose(scores["auto"], scores["false"], rtol=2e-6)


@pytest.mark.parametrize("steps", [40, 3])
def test_a_layer_without_sequence_outputs_equals_one_with_them(steps):
    """Issue 24: a layer that returns only its final states no longer collects every step's
    state in the time loop (as an unused while-loop TensorArray, it made XLA 3x slower); the
    numbers must not change: a per-sequence network's predictions against the same network
    collecting its states, in the loop each backend uses for ``steps`` time steps."""
    from bilstm_cli.engine import for_backend
    from bilstm_cli.engine.initializers import initial_parameters
    from bilstm_cli.engine.network import Network, Segment, Trunk

    module = for_backend()
    trunk = Trunk("lstm", 4, 1, 2, 2, "sequence")
    network = Network(trunk, [Segment("bilstm", None, "concat", 2)], module.time_loop(steps, False))
    params = initial_parameters(network, [1, 2])
    x = np.random.default_rng(0).normal(size=(2, 3, steps, 2)).astype(np.float32)
    lengths = np.full((2, 3), steps, np.int32)
    without = network.forward(params, x, lengths)

    collecting = Network(trunk, network.segments, network.scan)
    original = collecting._recurrence

    def with_sequences(inputs, mask, kernel, recurrent, bias, sequences, fused_gates=False):
        return (None, original(inputs, mask, kernel, recurrent, bias, True, fused_gates)[1])

    collecting._recurrence = with_sequences
    with_outputs = collecting.forward(params, x, lengths)
    np.testing.assert_array_equal(np.asarray(without), np.asarray(with_outputs))


@pytest.mark.parametrize("batch_size", [1, 4])
def test_copies_trained_together_equal_runs_trained_alone(batch_size):
    """Issue 24: variants x seeds as one program (paired streams, per-copy learning rates)
    give every run the history it has alone, within 1e-6."""
    variants = [
        ModelSettings(kind="bilstm", merge="concat", units=6),
        ModelSettings(kind="lstm", direction="backward", units=6),
        ModelSettings(kind="bilstm", merge="sum", units=6),
    ]
    seeds = [11, 12]
    validation = make_batches(cumulative_sum_task(32, 10, rng=np.random.default_rng(7)), 32)
    plan = FitPlan(epochs=12, log_every=4)
    rates = [0.001 * (1 + index) for index in range(len(variants) * len(seeds))]
    shape = (batch_size, 10, 1)
    streams = (0, 1) * len(variants)
    together_engine = make_engine(
        [(v, len(seeds)) for v in variants],
        SPEC,
        seeds * len(variants),
        shape,
        copy_streams=streams,
        learning_rates=rates,
    )
    sources = [online(batch_size, batch_size, seed) for seed in seeds]
    together = fit(together_engine, sources, plan, validation)
    copy = 0
    for variant in variants:
        engine = make_engine([(variant, 1)], SPEC, [seeds[0]], shape)
        for stream, seed in enumerate(seeds):
            engine.restart([seed], [rates[copy]])  # the same compiled program, another run
            alone = fit(engine, [sources[stream]], plan, validation)[0]
            assert alone.history.epoch == together[copy].history.epoch
            assert history_difference(alone.history, together[copy].history) < 1e-6
            copy += 1
    assert not np.allclose(together[0].history.loss, together[1].history.loss)  # different seeds: different runs


@pytest.mark.parametrize("seconds, expected", [(0.0, [5, 10]), (3600.0, [])])
def test_time_based_checkpoints_come_at_logged_epochs_when_due(seconds, expected):
    """Without checkpoint_every, a checkpoint is written at a logged epoch once checkpoint_seconds
    have passed since the last one (0: at every logged epoch; an hour: none during a short run).
    The last epoch's checkpoint is the caller's (it knows whether the run finished)."""
    engine = make_engine([(SMALL, 1)], SPEC, [1], (2, 10, 1), steps_per_call=5)
    saved = []
    plan = FitPlan(epochs=15, log_every=5, checkpoint_seconds=seconds)
    fit(
        engine,
        [online(2, 2, 1)],
        plan,
        callbacks=FitCallbacks(on_checkpoint=lambda epoch, history: saved.append(epoch)),
    )
    assert saved == expected


def test_an_lstm_with_fused_gates_computes_the_same_numbers():
    """Issue 24: evaluation on JAX computes an LSTM's four gates with one sigmoid (faster under
    XLA); the sigmoid is elementwise, so the outputs equal the per-gate form's up to the last
    bit of a vectorised sigmoid (TensorFlow's differs in the last bit on a packet's tail)."""
    from bilstm_cli.backend import ops
    from bilstm_cli.engine.cells import LSTM

    rng = np.random.default_rng(3)
    units, batch, directions = 5, 7, 3
    xp = rng.normal(size=(directions, batch, 4 * units)).astype(np.float32)
    state = tuple(rng.normal(size=(directions, batch, units)).astype(np.float32) for _ in range(2))
    recurrent = rng.normal(size=(directions, units, 4 * units)).astype(np.float32)
    bias = rng.normal(size=(directions, 4 * units)).astype(np.float32)
    per_gate = LSTM.step(xp, state, recurrent, bias)
    fused = LSTM.step(xp, state, recurrent, bias, fused_gates=True)
    for a, b in zip(per_gate, fused):
        np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(b), rtol=1e-6, atol=1e-7)
