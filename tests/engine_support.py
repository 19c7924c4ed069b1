"""Building engines and their Keras twins for tests (not a test module)."""

from __future__ import annotations

import numpy as np

from bilstm_cli.config.schema import ModelSettings
from bilstm_cli.data.spec import ModelSpec
from bilstm_cli.engine import for_backend
from bilstm_cli.engine.base import Program
from bilstm_cli.engine.keras_model import copy_weights, load_into
from bilstm_cli.engine.network import Network, Segment, Trunk
from bilstm_cli.engine.optimizers import OptimizerSettings
from bilstm_cli.model.build import build_model


def make_network(variants: list[tuple[ModelSettings, int]], spec: ModelSpec, timesteps: int, masked: bool = False):
    """A network of ``count`` copies of each model setting (all sharing units, layers...)."""
    first = variants[0][0]
    trunk = Trunk(
        cell=getattr(first, "cell", "lstm"),
        units=first.units,
        layers=first.layers,
        features=spec.features,
        num_classes=spec.num_classes,
        task=spec.task,
        pooling=first.pooling,
        dropout=first.dropout,
        masked=masked,
    )
    segments = [Segment(s.kind, s.direction, s.merge, count) for s, count in variants]
    return Network(trunk, segments, for_backend().time_loop(timesteps, False))


def make_engine(
    variants: list[tuple[ModelSettings, int]],
    spec: ModelSpec,
    seeds: list[int],
    batch_shape: tuple[int, int, int],
    *,
    copy_streams: tuple[int, ...] | None = None,
    learning_rates: list[float] | None = None,
    optimizer: OptimizerSettings | None = None,
    steps_per_call: int = 8,
    masked: bool = False,
    freezable: bool = False,
    standardization=None,
    jit_compile: bool = False,
):
    network = make_network(variants, spec, batch_shape[1], masked)
    copies = network.copies
    program = Program(
        network=network,
        spec=spec,
        optimizer=optimizer or OptimizerSettings(),
        batch_shape=batch_shape,
        copy_streams=copy_streams or tuple(range(copies)),
        steps_per_call=steps_per_call,
        standardization=standardization,
        freezable=freezable,
    )
    rates = learning_rates or [0.001] * copies
    return for_backend().engine_class(1)(program, seeds, rates, jit_compile=jit_compile)


def keras_twin(engine, copy: int, settings: ModelSettings, standardization=None):
    """The plain Keras model holding ``copy``'s current weights (what a run saves)."""
    network = engine.program.network
    model = build_model(settings, engine.program.spec, standardization, masked=True)
    load_into(model, copy_weights(network, copy, engine.copy_parameters(copy)))
    return model


def history_difference(first, second) -> float:
    """Largest absolute difference between two histories' training and validation losses."""
    loss = np.max(np.abs(np.asarray(first.loss) - np.asarray(second.loss)))
    val = np.nanmax(np.abs(np.asarray(first.val_loss) - np.asarray(second.val_loss)))
    return float(max(loss, 0.0 if np.isnan(val) else val))


def keras_step(model, optimizer, spec: ModelSpec, x, lengths, y, mask) -> float:
    """One optimizer step of a plain Keras model with a Keras optimizer, on the same loss as
    the engine's (mean cross-entropy over the labelled positions); returns the loss."""
    from bilstm_cli import backend
    from bilstm_cli.engine.terms import batch_terms

    if backend.name() == "tensorflow":
        tf = backend.tensorflow()
        with tf.GradientTape() as tape:
            loss_sum, positions, _ = batch_terms(spec, y, model([x, lengths], training=True), mask, mask)
            loss = loss_sum / positions
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return float(loss)
    jax = backend.jax()
    trainable = [v.value for v in model.trainable_variables]
    other = [v.value for v in model.non_trainable_variables]

    def objective(values):
        predictions, _ = model.stateless_call(values, other, [x, lengths], training=True)
        loss_sum, positions, _ = batch_terms(spec, y, predictions, mask, mask)
        return loss_sum / positions

    loss, grads = jax.value_and_grad(objective)(trainable)
    optimizer.apply(grads, model.trainable_variables)
    return float(loss)
