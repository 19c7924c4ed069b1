"""Models: every variant builds, trains and round-trips; merge semantics and backward alignment
against a NumPy LSTM; masking makes padding irrelevant."""

from __future__ import annotations

import numpy as np
import pytest

from bilstm_cli.backend import keras
from bilstm_cli.config.schema import ModelSettings
from bilstm_cli.config.vocabulary import DIRECTIONS
from bilstm_cli.data.batches import make_batches
from bilstm_cli.data.dataset import Dataset
from bilstm_cli.data.generator import cumulative_sum_task
from bilstm_cli.data.spec import ModelSpec
from bilstm_cli.model.build import build_model, load_model

from .engine_support import keras_twin, make_engine
from .numpy_lstm import gru_outputs, lstm_outputs, rnn_outputs

pytestmark = pytest.mark.usefixtures("cpu_device")

VARIANTS = [
    dict(kind="lstm", direction="forward"),
    dict(kind="lstm", direction="backward"),
    dict(kind="lstm", direction="backward-unaligned"),
    dict(kind="bilstm", merge="concat"),
    dict(kind="bilstm", merge="sum"),
    dict(kind="bilstm", merge="mul"),
    dict(kind="bilstm", merge="ave"),
]


def settings(**overrides) -> ModelSettings:
    return ModelSettings(units=6, **overrides)


def ragged(features: int = 2, classes: int = 2, per_sequence: bool = False, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    lengths = np.array([5, 8, 3, 8, 6])
    x = rng.normal(size=(5, 8, features)).astype(np.float32)
    x[np.arange(8)[None, :] >= lengths[:, None]] = 0
    y = rng.integers(0, classes, size=5 if per_sequence else (5, 8))
    if not per_sequence:
        y[np.arange(8)[None, :] >= lengths[:, None]] = 0
    return Dataset(x, y, lengths)


def variant_id(v):
    return f"{v['kind']}-{v.get('merge') or v.get('direction')}"


def outputs(model, x, lengths) -> np.ndarray:
    """An eager forward pass (cheaper than model.predict for a handful of sequences)."""
    return keras.ops.convert_to_numpy(model([x, np.asarray(lengths, "int32")], training=False))


def train_and_round_trip(tmp_path, model_settings: ModelSettings, spec: ModelSpec, data: Dataset) -> np.ndarray:
    """Train a few steps with the engine, move the weights into the plain Keras model (what a
    run saves), and check that its predictions equal the engine's and survive save + load."""
    standardization = (np.zeros(spec.features, np.float32), np.ones(spec.features, np.float32) * 4)
    batches = make_batches(data, 2)
    engine = make_engine(
        [(model_settings, 1)],
        spec,
        [0],
        (2, data.timesteps, spec.features),
        steps_per_call=3,
        masked=True,
        standardization=standardization,
    )
    before = keras_twin(engine, 0, model_settings, standardization).get_weights()
    results = engine.train([batches])
    model = keras_twin(engine, 0, model_settings, standardization)
    assert results.shape == (3, 1, 3) and np.isfinite(results[:, 0, 0]).all()
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "no weight changed"
    # the engine's own scores of the trained weights are the saved model's
    loss, _ = engine.evaluate(make_batches(data, data.size))[0]
    probabilities = outputs(model, data.x, data.lengths)
    expected_loss = _mean_cross_entropy(probabilities, data, spec)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = load_model(str(tmp_path / "m.keras"))
    np.testing.assert_array_equal(probabilities, outputs(loaded, data.x, data.lengths))
    return probabilities


def _mean_cross_entropy(probabilities: np.ndarray, data: Dataset, spec: ModelSpec) -> float:
    from bilstm_cli.inference.metrics import cross_entropy

    if spec.task == "per-step":
        mask = data.step_mask()
        return float(cross_entropy(probabilities[mask], data.y[mask]).mean())
    return float(cross_entropy(probabilities, data.y).mean())


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_variant_builds_trains_and_round_trips(tmp_path, variant):
    predictions = train_and_round_trip(tmp_path, settings(**variant), ModelSpec(2, 2), ragged())
    assert predictions.shape == (5, 8, 1)


@pytest.mark.parametrize(
    ("variant", "task", "classes", "extra", "shape"),
    [
        (dict(kind="bilstm", merge="sum"), "sequence", 3, {}, (5, 3)),
        (dict(kind="lstm", direction="backward"), "sequence", 2, {"pooling": "mean"}, (5, 1)),
        (dict(kind="bilstm", merge="concat"), "per-step", 4, {"layers": 2, "dropout": 0.2}, (5, 8, 4)),
        (dict(kind="lstm", direction="backward"), "per-step", 2, {"layers": 2}, (5, 8, 1)),
    ],
)
def test_heads_and_stacks_train_and_round_trip(tmp_path, variant, task, classes, extra, shape):
    data = ragged(classes=classes, per_sequence=task == "sequence")
    predictions = train_and_round_trip(tmp_path, settings(**variant, **extra), ModelSpec(2, classes, task), data)
    assert predictions.shape == shape


def lstm_weights(layer):
    kernel, recurrent, bias = (w.numpy() for w in layer.cell.weights[:3])
    return kernel, recurrent, bias


@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "ave"])
def test_merge_modes_match_numpy(merge):
    keras.utils.set_random_seed(1)
    model = build_model(settings(kind="bilstm", merge=merge), ModelSpec(2, 2))
    bidirectional = model.get_layer("bilstm_0")
    hidden = keras.Model(model.inputs, bidirectional.output)
    data = ragged()
    got = outputs(hidden, data.x, data.lengths)
    for i, length in enumerate(data.lengths):
        x = data.x[i, :length].astype(np.float64)
        forward = lstm_outputs(x, *lstm_weights(bidirectional.forward_layer))
        backward = lstm_outputs(x, *lstm_weights(bidirectional.backward_layer), reverse=True)[::-1]
        expected = {
            "concat": np.concatenate([forward, backward], axis=-1),
            "sum": forward + backward,
            "mul": forward * backward,
            "ave": (forward + backward) / 2,
        }[merge]
        np.testing.assert_allclose(got[i, :length], expected, atol=2e-5)


def test_backward_lstm_is_aligned_and_unaligned_reproduces_the_tutorial():
    data = ragged(features=1)
    data = Dataset(data.x, data.y, np.full(5, 8))  # full length, as in the tutorial
    results = {}
    for direction in ("backward", "backward-unaligned"):
        keras.utils.set_random_seed(2)  # same seed: same weights for both
        model = build_model(settings(kind="lstm", direction=direction), ModelSpec(1, 2))
        layer = model.get_layer("lstm_0")
        hidden = keras.Model(model.inputs, model.layers[-2].output if direction == "backward" else layer.output)
        results[direction] = outputs(hidden, data.x, data.lengths)
        weights = lstm_weights(layer)
    for i in range(5):
        read_from_end = lstm_outputs(data.x[i].astype(np.float64), *weights, reverse=True)
        # aligned: output t has read steps T-1 .. t, i.e. it sits at position t
        np.testing.assert_allclose(results["backward"][i], read_from_end[::-1], atol=2e-5)
        # unaligned (tutorial): output t is the state after reading steps T-1 .. T-1-t
        np.testing.assert_allclose(results["backward-unaligned"][i], read_from_end, atol=2e-5)
    assert not np.allclose(results["backward"], results["backward-unaligned"])


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
@pytest.mark.parametrize("task", ["per-step", "sequence"])
def test_padding_changes_nothing(variant, task):
    if variant.get("direction") == "backward-unaligned" and task == "per-step":
        pytest.skip("the tutorial's unaligned outputs are in reversed order, so padding shifts them by design")
    keras.utils.set_random_seed(3)
    model = build_model(settings(**variant), ModelSpec(2, 2, task))
    rng = np.random.default_rng(4)
    alone = rng.normal(size=(1, 5, 2)).astype(np.float32)
    batch = rng.normal(size=(3, 9, 2)).astype(np.float32) * 10  # padding full of garbage
    batch[1, :5] = alone[0]
    single = outputs(model, alone, [5])[0]
    padded = outputs(model, batch, [9, 5, 7])[1]
    if task == "per-step":
        padded = padded[:5]
    np.testing.assert_allclose(single, padded, atol=1e-6)


def test_padded_positions_do_not_count_in_loss_or_accuracy():
    spec = ModelSpec(1, 2)
    engine = make_engine([(settings(kind="bilstm", merge="concat"), 1)], spec, [5], (4, 4, 1), masked=True)
    data = cumulative_sum_task(4, 6, rng=np.random.default_rng(0))
    short = Dataset(data.x[:, :4].copy(), data.y[:, :4].copy(), np.full(4, 4))
    padded = Dataset(
        np.concatenate([short.x, np.zeros((4, 3, 1), np.float32)], 1),
        np.concatenate([short.y, np.ones((4, 3), np.int64)], 1),
        np.full(4, 4),
    )
    loss_a, accuracy_a = engine.evaluate(make_batches(short, 4))[0]
    loss_b, accuracy_b = engine.evaluate(make_batches(padded, 3))[0]  # other batching, padded steps
    assert loss_a == pytest.approx(loss_b, abs=1e-6) and accuracy_a == pytest.approx(accuracy_b)


@pytest.mark.parametrize(
    ("variants", "task", "classes", "extra"),
    [
        ([dict(kind="bilstm", merge=m) for m in ("sum", "mul", "ave", "concat")], "per-step", 2, {}),
        (
            [dict(kind="lstm", direction=d) for d in DIRECTIONS] + [dict(kind="bilstm", merge="concat")],
            "per-step",
            2,
            {},
        ),
        ([dict(kind="bilstm", merge="concat"), dict(kind="bilstm", merge="sum")], "sequence", 2, {"layers": 2}),
        (
            [dict(kind="bilstm", merge="ave"), dict(kind="lstm", direction="backward")],
            "sequence",
            4,
            {"pooling": "mean", "layers": 2},
        ),
        ([dict(kind="bilstm", merge="mul")], "per-step", 3, {"layers": 2}),
    ],
    ids=["merges", "directions", "stacked-last", "stacked-mean", "stacked-softmax"],
)
def test_the_engine_computes_what_the_saved_keras_model_computes(variants, task, classes, extra):
    """Every copy of a mixed program predicts, on ragged input, what its plain Keras model
    (built by build_model, weights moved in) predicts: the engine's stacked cell, merges,
    alignment, masking, pooling and heads are Keras' own."""
    from bilstm_cli.backend import ops

    spec = ModelSpec(2, classes, task)
    data = ragged(classes=classes, per_sequence=task == "sequence")
    standardization = (np.array([0.5, -1.0], np.float32), np.array([2.0, 0.5], np.float32))
    model_settings = [settings(**variant, **extra) for variant in variants]
    engine = make_engine(
        [(s, 1) for s in model_settings],
        spec,
        list(range(len(variants))),
        (5, 8, 2),
        masked=True,
        standardization=standardization,
    )
    network = engine.program.network
    copies = len(variants)
    x = np.broadcast_to(data.x, (copies, *data.x.shape))
    lengths = np.broadcast_to(data.lengths.astype(np.int32), (copies, data.size))
    predictions = keras.ops.convert_to_numpy(
        network.forward(engine._state[0], ops.convert_to_tensor(x), ops.convert_to_tensor(lengths), standardization)
    )
    mask = data.step_mask() if task == "per-step" else np.ones(data.size, bool)
    for copy, model_setting in enumerate(model_settings):
        expected = outputs(keras_twin(engine, copy, model_setting, standardization), data.x, data.lengths)
        np.testing.assert_allclose(predictions[copy][mask], expected[mask], atol=1e-6)


# ---------------------------------------------------------------------------- GRU and SimpleRNN cells

REFERENCE_CELLS = {"lstm": lstm_outputs, "gru": gru_outputs, "rnn": rnn_outputs}


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_gru_and_rnn_cells_match_numpy(cell):
    """Keras' GRU (reset_after=True) and SimpleRNN inside Bidirectional, on ragged input, equal
    the NumPy cells read forward and backward (what the engine's cells must also compute)."""
    keras.utils.set_random_seed(5)
    model = build_model(settings(kind="bilstm", merge="concat", cell=cell), ModelSpec(2, 2))
    bidirectional = model.get_layer(f"bi{cell}_0")
    assert type(bidirectional.forward_layer).__name__ == {"gru": "GRU", "rnn": "SimpleRNN"}[cell]
    hidden = keras.Model(model.inputs, bidirectional.output)
    data = ragged()
    got = outputs(hidden, data.x, data.lengths)
    reference = REFERENCE_CELLS[cell]
    for i, length in enumerate(data.lengths):
        x = data.x[i, :length].astype(np.float64)
        forward = reference(x, *lstm_weights(bidirectional.forward_layer))
        backward = reference(x, *lstm_weights(bidirectional.backward_layer), reverse=True)[::-1]
        np.testing.assert_allclose(got[i, :length], np.concatenate([forward, backward], axis=-1), atol=2e-5)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
@pytest.mark.parametrize(
    ("variants", "task", "classes", "extra"),
    [
        (
            [dict(kind="bilstm", merge=m) for m in ("concat", "sum")]
            + [dict(kind="lstm", direction=d) for d in DIRECTIONS],
            "per-step",
            2,
            {},
        ),
        ([dict(kind="bilstm", merge="ave"), dict(kind="lstm", direction="backward")], "sequence", 3, {"layers": 2}),
    ],
    ids=["mixed", "stacked-last"],
)
def test_the_engine_computes_what_the_saved_keras_model_computes_for_other_cells(cell, variants, task, classes, extra):
    """As for the LSTM: every copy of a mixed GRU / SimpleRNN program predicts, on ragged input,
    what its plain Keras model (GRU / SimpleRNN layers, weights moved in) predicts."""
    from bilstm_cli.backend import ops

    spec = ModelSpec(2, classes, task)
    data = ragged(classes=classes, per_sequence=task == "sequence")
    model_settings = [settings(**variant, **extra, cell=cell) for variant in variants]
    engine = make_engine([(s, 1) for s in model_settings], spec, list(range(len(variants))), (5, 8, 2), masked=True)
    copies = len(variants)
    x = np.broadcast_to(data.x, (copies, *data.x.shape))
    lengths = np.broadcast_to(data.lengths.astype(np.int32), (copies, data.size))
    predictions = keras.ops.convert_to_numpy(
        engine.program.network.forward(engine._state[0], ops.convert_to_tensor(x), ops.convert_to_tensor(lengths))
    )
    mask = data.step_mask() if task == "per-step" else np.ones(data.size, bool)
    for copy, model_setting in enumerate(model_settings):
        model = keras_twin(engine, copy, model_setting)
        layer = model.get_layer(f"{'bi' if model_setting.kind == 'bilstm' else ''}{cell}_0")
        assert cell.upper() in type(getattr(layer, "forward_layer", layer)).__name__.upper()
        expected = outputs(model, data.x, data.lengths)
        np.testing.assert_allclose(predictions[copy][mask], expected[mask], atol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_other_cells_train_and_round_trip(tmp_path, cell):
    predictions = train_and_round_trip(
        tmp_path, settings(kind="bilstm", merge="sum", cell=cell), ModelSpec(2, 2), ragged()
    )
    assert predictions.shape == (5, 8, 1)
