"""The JAX engine: many optimizer steps per compiled call, and all repeats of a variant at once.

The same contract as the TensorFlow engine (:mod:`bilstm_cli.engine.tensorflow`), built the
JAX way: a pure step ``(state, batch) -> (state, [loss, positions, correct])`` from Keras'
``model.stateless_call`` and ``optimizer.stateless_apply``, scanned over the stacked steps
of a chunk with ``jax.lax.scan`` and compiled once. The state is a small tuple of lists of
arrays (trainable values, non-trainable values including the dropout RNG state, optimizer
values); the Keras variables are only written when someone reads ``engine.model``.

:class:`RepeatsEngine` runs R repeats of one variant as one program: ``jax.vmap`` of the
same scan over stacked states and stacked data streams, so a comparison pays one compile per
variant and fills the hardware.

:class:`DataParallelEngine` trains one run on several devices (``train.devices``): the same
scan, with every step's batch sharded across a device mesh and the state replicated.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from .. import backend
from ..backend import keras
from ..data.batches import Batches
from ..data.dataset import PER_STEP
from ..data.spec import ModelSpec
from ..device import DeviceInfo, jax_device, jax_devices
from ..errors import TrainingError
from .terms import batch_terms, make_optimizer

jax = backend.jax()
jnp = jax.numpy

State = tuple  # (trainable values, non-trainable values, optimizer values): lists of arrays


def use_xla(setting: bool | str, device_kind: str, batch_size: int, timesteps: int) -> bool:
    """JAX always compiles with XLA (there is no graph mode to fall back to)."""
    return True


def placed(device: DeviceInfo):
    """A context in which new arrays (a model being built or loaded) live on ``device``."""
    return jax.default_device(jax_device(device))


def predictor(model: keras.Model, device: DeviceInfo):
    """A compiled ``(x, lengths) -> probabilities`` function of a model, on ``device``."""
    call = jax.jit(lambda trainable, other, x, lengths: model.stateless_call(trainable, other, [x, lengths])[0])
    trainable = [v.value for v in model.trainable_variables]
    other = [v.value for v in model.non_trainable_variables]
    return lambda x, lengths: np.asarray(call(trainable, other, x, lengths))


class _Program:
    """The pure functions of one model and optimizer, and their compiled forms."""

    def __init__(self, model: keras.Model, spec: ModelSpec, optimizer: keras.optimizers.Optimizer):
        self.model = model
        self.spec = spec
        self.optimizer = optimizer

    def loss(self, trainable, non_trainable, batch):
        x, lengths, y, mask, weight = batch
        predictions, non_trainable = self.model.stateless_call(trainable, non_trainable, [x, lengths], training=True)
        loss_sum, positions, correct = batch_terms(self.spec, y, predictions, mask, weight)
        loss = loss_sum / jnp.maximum(positions, 1.0)
        return loss, (non_trainable, jnp.stack([loss, positions, correct]))

    def step(self, state: State, batch) -> tuple[State, jax.Array]:
        """One optimizer step."""
        trainable, non_trainable, optimizer_values = state
        (_, (non_trainable, metrics)), grads = jax.value_and_grad(self.loss, has_aux=True)(
            trainable, non_trainable, batch
        )
        trainable, optimizer_values = self.optimizer.stateless_apply(optimizer_values, grads, trainable)
        return (trainable, non_trainable, optimizer_values), metrics

    def chunk(self, state: State, batches, count):
        """The steps of stacked ``batches`` (leaves ``(S, batch, ...)``); steps at or after
        ``count`` are padding and change nothing (``lax.cond`` runs only the chosen branch, so
        they cost nothing either). Returns the state and ``(S, 3)`` metrics."""

        def body(state, indexed):
            index, batch = indexed
            skip = lambda state, batch: (state, jnp.zeros(3, jnp.float32))  # noqa: E731
            return jax.lax.cond(index < count, self.step, skip, state, batch)

        steps = batches[0].shape[0]
        return jax.lax.scan(body, state, (jnp.arange(steps), batches))

    def evaluation(self, state: State, batches):
        """Summed (loss, positions, correct) over stacked validation batches."""
        trainable, non_trainable, _ = state

        def body(totals, batch):
            x, lengths, y, mask = batch
            predictions, _ = self.model.stateless_call(trainable, non_trainable, [x, lengths], training=False)
            return totals + jnp.stack(batch_terms(self.spec, y, predictions, mask, mask)), None

        return jax.lax.scan(body, jnp.zeros(3, jnp.float32), batches)[0]


def _training_arrays(batches: Batches) -> tuple:
    return batches.x, batches.lengths, batches.y, batches.mask, batches.weight


def _validation_arrays(batches: Batches) -> tuple:
    return batches.x, batches.lengths, batches.y, batches.mask


def _mean_scores(totals: np.ndarray) -> tuple[float, float]:
    positions = max(float(totals[1]), 1.0)
    return float(totals[0] / positions), float(totals[2] / positions)


class TrainingEngine:
    """A model, its optimizer and the compiled multi-step training and evaluation calls.

    Args:
        model: built by :func:`bilstm_cli.model.build.build_model`.
        spec: the model's data spec (binary or C classes, per-step or per-sequence).
        optimizer: ``adam``, ``sgd`` or ``rmsprop``.
        learning_rate: optimizer learning rate.
        jit_compile: ignored (JAX always compiles with XLA); kept for the shared interface.
        steps_per_call: optimizer steps per compiled call (the arrays are padded to it).
        device: the device the state lives on (see :func:`bilstm_cli.device.select_device`).

    Reusing one engine for several runs of the same architecture (``reset``) skips tracing
    and compilation: ``compare`` pays for them once per variant, not once per repeat.
    """

    def __init__(
        self,
        model: keras.Model,
        spec: ModelSpec,
        optimizer: str = "adam",
        learning_rate: float = 0.001,
        jit_compile: bool = True,
        steps_per_call: int = 100,
        device: DeviceInfo | None = None,
    ):
        if steps_per_call < 1:
            raise ValueError(f"steps_per_call must be >= 1. Received: steps_per_call={steps_per_call}")
        self._model = model
        self.spec = spec
        self.steps_per_call = steps_per_call
        self.jit_compile = True
        self.optimizer = make_optimizer(optimizer, learning_rate)
        self.optimizer.build(model.trainable_variables)
        self._program = _Program(model, spec, self.optimizer)
        self._initial_optimizer_values = [jnp.array(v.value) for v in self.optimizer.variables]
        self._state = self._read_variables()
        # the state's buffers are donated: each call updates the weights in place
        self._train_call = jax.jit(self._program.chunk, donate_argnums=0)
        self._evaluate_call = jax.jit(self._program.evaluation)
        self._repeat_calls = None  # built by RepeatsEngine on first use

    # -- state <-> Keras variables -------------------------------------------------------

    def _read_variables(self) -> State:
        copy = lambda variable: jnp.array(variable.value, copy=True)  # noqa: E731 - donation-safe copies
        return (
            [copy(v) for v in self._model.trainable_variables],
            [copy(v) for v in self._model.non_trainable_variables],
            [copy(v) for v in self.optimizer.variables],
        )

    def _write_variables(self, state: State) -> None:
        trainable, non_trainable, optimizer_values = state
        for variables, values in (
            (self._model.trainable_variables, trainable),
            (self._model.non_trainable_variables, non_trainable),
            (self.optimizer.variables, optimizer_values),
        ):
            for variable, value in zip(variables, values):
                variable.assign(value)

    def _placed(self, arrays: tuple) -> tuple:
        """Training arrays as the compiled call takes them (one device: as they are)."""
        return arrays

    @property
    def model(self) -> keras.Model:
        """The Keras model holding the current weights (written from the state on access)."""
        self._write_variables(self._state)
        return self._model

    # -- public API (the same as the TensorFlow engine's) -------------------------------

    def compile(self, batch_shape: tuple[int, int, int], validation: Batches | None = None) -> float:
        """Compile the training call for ``(batch, T, F)`` batches and the evaluation call for
        ``validation``'s shapes, ahead of time; returns the seconds spent.

        The compiled programs land in the jitted functions' caches; the functions stay jitted, so
        other shapes (a test set of another size) still compile when they first come.
        """
        started = time.perf_counter()
        batch, timesteps, features = batch_shape
        positions = timesteps if self.spec.task == PER_STEP else 1
        dummy = Batches.zeros(self.steps_per_call, batch, timesteps, features, positions)
        dummy = self._placed(_training_arrays(dummy))
        self._train_call.lower(self._state, dummy, np.int32(0)).compile()
        if validation is not None:
            self._evaluate_call.lower(self._state, _validation_arrays(validation)).compile()
        return time.perf_counter() - started

    def train(self, batches: Batches) -> np.ndarray:
        """Train on every step of ``batches``; returns ``(steps, 3)``: loss, positions, correct."""
        results = []
        for start in range(0, batches.steps, self.steps_per_call):
            part = batches.slice(start, start + self.steps_per_call)
            arrays = self._placed(_training_arrays(part.padded_to(self.steps_per_call)))
            self._state, metrics = self._train_call(self._state, arrays, np.int32(part.steps))
            results.append(np.asarray(metrics)[: part.steps])
        return np.concatenate(results) if results else np.zeros((0, 3), np.float32)

    def evaluate(self, batches: Batches) -> tuple[float, float]:
        """Mean loss and accuracy over the real positions of ``batches`` (no class weights)."""
        return _mean_scores(np.asarray(self._evaluate_call(self._state, _validation_arrays(batches)), np.float64))

    def state(self) -> list[np.ndarray]:
        """All model variables (weights and dropout RNG state) and optimizer variables, in the
        same order as the TensorFlow engine's."""
        model = self.model  # writes the state into the Keras variables
        return [np.asarray(v.value) for v in model.variables] + [np.asarray(v.value) for v in self.optimizer.variables]

    def load_state(self, values: Sequence[np.ndarray]) -> None:
        variables = list(self._model.variables) + list(self.optimizer.variables)
        if len(values) != len(variables):
            raise TrainingError(f"checkpoint holds {len(values)} arrays, this model needs {len(variables)}")
        for variable, value in zip(variables, values):
            variable.assign(value)
        self._state = self._read_variables()

    def set_learning_rate(self, learning_rate: float) -> None:
        """Train the next runs with another learning rate, keeping the compiled calls: it is an
        optimizer variable (part of the state), so a grid over learning rates compiles once."""
        self._write_variables(self._state)
        self.optimizer.learning_rate = float(learning_rate)
        for index, variable in enumerate(self.optimizer.variables):
            if variable.name == "learning_rate":  # the snapshot that reset() restores
                self._initial_optimizer_values[index] = jnp.array(variable.value)
        self._state = self._read_variables()

    def reset(self, initial_model: keras.Model) -> None:
        """Start again from ``initial_model``'s weights with a fresh optimizer state."""
        for variable, value in zip(self._model.variables, initial_model.variables):
            variable.assign(value.value)
        for variable, value in zip(self.optimizer.variables, self._initial_optimizer_values):
            variable.assign(value)
        self._state = self._read_variables()


class DataParallelEngine(TrainingEngine):
    """A :class:`TrainingEngine` on several devices: the same compiled scan, with the batch
    axis of every step sharded across a one-axis device mesh and the state replicated
    (``jax.sharding``). XLA's SPMD partitioner splits each step's forward and backward pass
    by batch and inserts the all-reduce that sums the gradients and loss terms across
    devices, so every device applies the same update and each step returns the whole batch's
    loss, positions and correct count, as on one device.

    Args:
        device: the devices to train on (from :func:`bilstm_cli.device.spread_over`); the
            rest as for :class:`TrainingEngine`.
    """

    def __init__(self, model: keras.Model, spec: ModelSpec, *, device: DeviceInfo, **settings):
        mesh = jax.sharding.Mesh(np.array(jax_devices(device)), ("batch",))
        self._replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        # training arrays are (steps, batch, ...): split the batch, keep the steps whole
        self._batch_sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, "batch"))
        super().__init__(model, spec, device=device, **settings)

    def _read_variables(self) -> State:
        return jax.device_put(super()._read_variables(), self._replicated)

    def _placed(self, arrays: tuple) -> tuple:
        return jax.device_put(arrays, self._batch_sharded)


class RepeatsEngine:
    """R repeats of one variant trained as one program (``jax.vmap`` over repeats).

    Each repeat keeps its own initial weights, optimizer state, dropout RNG and data stream;
    only the compiled program is shared. The validation set is shared and scored for all
    repeats in one call.

    Args:
        engine: a :class:`TrainingEngine` of the variant (its model and optimizer define the program).
        initial_models: one freshly initialised model per repeat.
    """

    def __init__(
        self, engine: TrainingEngine, initial_models: Sequence[keras.Model], steps_per_call: int | None = None
    ):
        self.engine = engine
        # R runs' data in one call: the caller lowers the steps per call to keep the memory bound
        self.steps_per_call = steps_per_call or engine.steps_per_call
        self.repeats = len(initial_models)
        program = engine._program
        states = []
        for model in initial_models:
            engine.reset(model)
            states.append(engine._state)
        self._state = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
        # data and state have a leading repeat axis; the padding count is shared. The calls live
        # on the engine: the variants of a learning-rate grid reuse one compiled program.
        if engine._repeat_calls is None:
            engine._repeat_calls = (
                jax.jit(jax.vmap(program.chunk, in_axes=(0, 0, None)), donate_argnums=0),
                jax.jit(jax.vmap(program.evaluation, in_axes=(0, None))),
            )
        self._train_call, self._evaluate_call = engine._repeat_calls

    def train(self, batches: Sequence[Batches]) -> np.ndarray:
        """Train repeat r on ``batches[r]`` (equal numbers of steps); returns ``(R, steps, 3)``."""
        steps = batches[0].steps
        results = []
        for start in range(0, steps, self.steps_per_call):
            parts = [b.slice(start, start + self.steps_per_call).padded_to(self.steps_per_call) for b in batches]
            count = min(self.steps_per_call, steps - start)
            arrays = _training_arrays(Batches.stack(parts))
            self._state, metrics = self._train_call(self._state, arrays, np.int32(count))
            results.append(np.asarray(metrics)[:, :count])
        return np.concatenate(results, axis=1) if results else np.zeros((self.repeats, 0, 3), np.float32)

    def evaluate(self, batches: Batches) -> list[tuple[float, float]]:
        """Mean loss and accuracy of every repeat on the shared validation batches."""
        totals = np.asarray(self._evaluate_call(self._state, _validation_arrays(batches)), np.float64)
        return [_mean_scores(row) for row in totals]
