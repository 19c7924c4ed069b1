"""The TensorFlow engine: many optimizer steps per compiled call.

Instead of one ``model.fit`` per epoch (about 110 ms of overhead per tutorial step), the
engine runs many optimizer steps inside one compiled TensorFlow call (a ``while`` loop,
XLA-compiled on CPU; cuDNN kernels on GPU) and returns every step's loss and accuracy, so
per-epoch curves are still exact.

:class:`DataParallelEngine` trains on several devices (``train.devices``) with
``tf.distribute.MirroredStrategy``: every step's batch is split across the devices and the
gradients are summed before one identical update of every copy of the weights.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from .. import backend
from ..backend import keras
from ..data.batches import Batches
from ..data.dataset import PER_STEP
from ..data.spec import ModelSpec
from ..device import DeviceInfo
from ..errors import TrainingError
from .terms import batch_terms, make_optimizer

tf = backend.tensorflow()

# XLA pays off on CPU while one step is small: per-op overhead dominates there and XLA fuses
# it away (measured: 0.3 ms vs 2.6 ms per step at T=10, batch 1). For large steps a plain
# graph is as fast or faster, and XLA's recurrent loop grows worse than linearly with T
# (batch 64: 40 vs 30 ms at T=100, 640 vs 250 ms at T=1000).
XLA_MAX_STEP_VALUES = 2048


def use_xla(setting: bool | str, device_kind: str, batch_size: int, timesteps: int) -> bool:
    """Whether to XLA-compile the training loop: the setting if explicit, else ``auto``:
    on CPU when ``batch_size x timesteps <= XLA_MAX_STEP_VALUES``, never on GPU (where the
    cuDNN LSTM kernel is used, which XLA cannot compile)."""
    if setting != "auto":
        return bool(setting)
    return device_kind == "cpu" and batch_size * timesteps <= XLA_MAX_STEP_VALUES


class TrainingEngine:
    """A model, its optimizer and the compiled multi-step training and evaluation calls.

    Args:
        model: built by :func:`bilstm_cli.model.build.build_model`.
        spec: the model's data spec (binary or C classes, per-step or per-sequence).
        optimizer: ``adam``, ``sgd`` or ``rmsprop``.
        learning_rate: optimizer learning rate.
        jit_compile: compile the training loop with XLA.
        steps_per_call: optimizer steps per compiled call (the arrays are padded to it).
        device: the selected device (or a TensorFlow device string).

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
        device: DeviceInfo | str = "/CPU:0",
    ):
        if steps_per_call < 1:
            raise ValueError(f"steps_per_call must be >= 1. Received: steps_per_call={steps_per_call}")
        self.model = model
        self.spec = spec
        self.device = device.name if isinstance(device, DeviceInfo) else device
        self.steps_per_call = steps_per_call
        self.jit_compile = jit_compile
        with self._placement():
            self.optimizer = make_optimizer(optimizer, learning_rate)
            self.optimizer.build(model.trainable_variables)
        self._initial_optimizer_state = [v.numpy() for v in self.optimizer.variables]
        self._train_call = tf.function(self._train_steps, jit_compile=jit_compile)
        self._evaluate_call = tf.function(self._evaluate_batch)

    def _placement(self):
        """Where variables are created and the calls run: the engine's device."""
        return tf.device(self.device)

    def _call_arguments(self, batches: Batches, count: int) -> tuple:
        """The training call's arguments: the stacked batches and the number of real steps."""
        return (*batches.arrays(), tf.constant(count))

    # -- compiled bodies ---------------------------------------------------------------

    def _train_steps(self, x, lengths, y, mask, weight, count):
        """Run ``count`` optimizer steps; return (loss, positions, correct) per step."""
        model, optimizer, spec = self.model, self.optimizer, self.spec
        variables = model.trainable_variables
        results = tf.zeros((x.shape[0], 3), tf.float32)

        def step(i, results):
            with tf.GradientTape() as tape:
                predictions = model([x[i], lengths[i]], training=True)
                loss_sum, positions, correct = batch_terms(spec, y[i], predictions, mask[i], weight[i])
                loss = loss_sum / tf.maximum(positions, 1.0)
            optimizer.apply(tape.gradient(loss, variables), variables)
            row = tf.stack([loss, positions, correct])[None, :]
            return i + 1, tf.tensor_scatter_nd_update(results, [[i]], row)

        _, results = tf.while_loop(lambda i, _: i < count, step, (tf.constant(0), results))
        return results

    def _evaluate_batch(self, x, lengths, y, mask):
        predictions = self.model([x, lengths], training=False)
        return tf.stack(batch_terms(self.spec, y, predictions, mask, mask))

    # -- public API --------------------------------------------------------------------

    def compile(self, batch_shape: tuple[int, int, int], validation: Batches | None = None) -> float:
        """Trace and compile the training call for ``(batch, T, F)`` batches, and the
        evaluation call for ``validation``'s shapes; returns the seconds spent.

        The compiled loop is run for zero steps, so nothing is trained. XLA compiles in C++
        without holding the GIL, so a helper thread compiles while this thread traces the
        evaluation call: on two cores the two costs overlap.
        """
        batch, timesteps, features = batch_shape
        positions = timesteps if self.spec.task == PER_STEP else 1
        dummy = Batches.zeros(self.steps_per_call, batch, timesteps, features, positions)
        arguments = self._call_arguments(dummy, 0)
        started = time.perf_counter()
        with self._placement():
            self._train_call.get_concrete_function(*arguments)  # Python tracing: one thread at a time
        failures: list[BaseException] = []

        def compile_training_call() -> None:
            try:
                with self._placement():
                    self._train_call(*arguments).numpy()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread below
                failures.append(exc)

        helper = threading.Thread(target=compile_training_call, name="xla-compile")
        helper.start()
        if validation is not None:
            self.evaluate(validation.slice(0, 1))
        helper.join()
        if failures:
            raise failures[0]
        return time.perf_counter() - started

    def train(self, batches: Batches) -> np.ndarray:
        """Train on every step of ``batches``; returns ``(steps, 3)``: loss, positions, correct."""
        results = []
        for start in range(0, batches.steps, self.steps_per_call):
            part = batches.slice(start, start + self.steps_per_call)
            with self._placement():
                out = self._train_call(*self._call_arguments(part.padded_to(self.steps_per_call), part.steps))
            results.append(out.numpy()[: part.steps])
        return np.concatenate(results) if results else np.zeros((0, 3), np.float32)

    def evaluate(self, batches: Batches) -> tuple[float, float]:
        """Mean loss and accuracy over the real positions of ``batches`` (no class weights)."""
        totals = np.zeros(3)
        with self._placement():
            for i in range(batches.steps):
                totals += self._evaluate_call(batches.x[i], batches.lengths[i], batches.y[i], batches.mask[i]).numpy()
        positions = max(totals[1], 1.0)
        return float(totals[0] / positions), float(totals[2] / positions)

    def state(self) -> list[np.ndarray]:
        """All model variables (weights and dropout RNG state) and optimizer variables."""
        return [v.numpy() for v in self.model.variables] + [v.numpy() for v in self.optimizer.variables]

    def load_state(self, values: list[np.ndarray]) -> None:
        variables = list(self.model.variables) + list(self.optimizer.variables)
        if len(values) != len(variables):
            raise TrainingError(f"checkpoint holds {len(values)} arrays, this model needs {len(variables)}")
        for variable, value in zip(variables, values):
            variable.assign(value)

    def set_learning_rate(self, learning_rate: float) -> None:
        """Train the next runs with another learning rate, keeping the compiled calls: it is an
        optimizer variable, so a grid over learning rates compiles once."""
        self.optimizer.learning_rate = float(learning_rate)
        for index, variable in enumerate(self.optimizer.variables):
            if variable.name == "learning_rate":  # the snapshot that reset() restores
                self._initial_optimizer_state[index] = variable.numpy()

    def reset(self, initial_model: keras.Model) -> None:
        """Start again from ``initial_model``'s weights with a fresh optimizer state."""
        for variable, value in zip(self.model.variables, initial_model.variables):
            variable.assign(value)
        for variable, value in zip(self.optimizer.variables, self._initial_optimizer_state):
            variable.assign(value)


class DataParallelEngine(TrainingEngine):
    """A :class:`TrainingEngine` on several devices (``tf.distribute.MirroredStrategy``).

    Every optimizer step splits its batch evenly across the devices (``strategy.run`` per
    step, inside the same multi-step ``while`` loop). Each replica computes the gradients of
    its share's loss sum; Keras' TensorFlow optimizer, applied in replica context, sums them
    across replicas and makes one identical update on every copy of the weights. Dividing by
    the whole batch's labelled positions (summed across replicas first) gives the gradients
    of the single-device loss. Loss terms are summed across replicas too, so every step
    returns the whole batch's loss, positions and correct count, as on one device.

    XLA cannot compile the whole loop here (one compiled cluster cannot reach the other
    devices' copies of the variables), so ``jit_compile`` compiles each replica's forward and
    backward pass; the loop, the all-reduce and the update run as a graph.

    The model must be built inside :func:`placed` (the strategy's scope), so its variables
    are mirrored on every device.

    Args:
        device: the devices to train on (``device.names``, from
            :func:`bilstm_cli.device.spread_over`); the rest as for :class:`TrainingEngine`.
    """

    def __init__(self, model: keras.Model, spec: ModelSpec, *, device: DeviceInfo, **settings):
        self._strategy = mirrored_strategy(device)
        super().__init__(model, spec, device=device, **settings)
        self._gradients_call = tf.function(self._replica_gradients, jit_compile=self.jit_compile)
        self._train_call = tf.function(self._train_steps)

    def _placement(self):
        return self._strategy.scope()

    def _call_arguments(self, batches: Batches, count: int) -> tuple:
        """Each replica's share of every step's batch (consecutive slices, in device order),
        placed on its device, and the number of real steps."""
        arrays = batches.arrays()
        share = arrays[0].shape[1] // self._strategy.num_replicas_in_sync
        devices = self._strategy.extended.worker_devices

        def replica_share(context) -> tuple:
            first = context.replica_id_in_sync_group * share
            with tf.device(devices[context.replica_id_in_sync_group]):
                return tuple(tf.constant(array[:, first : first + share]) for array in arrays)

        return (*self._strategy.experimental_distribute_values_from_function(replica_share), tf.constant(count))

    def _replica_gradients(self, x, lengths, y, mask, weight):
        """Gradients of this replica's loss sum, and its (loss sum, positions, correct)."""
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            predictions = self.model([x, lengths], training=True)
            loss_sum, positions, correct = batch_terms(self.spec, y, predictions, mask, weight)
        return tape.gradient(loss_sum, variables), tf.stack([loss_sum, positions, correct])

    def _replica_step(self, i, x, lengths, y, mask, weight):
        """Step ``i`` on this replica's share; returns the whole batch's (loss, positions, correct)."""
        gradients, terms = self._gradients_call(x[i], lengths[i], y[i], mask[i], weight[i])
        totals = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, terms)
        positions = tf.maximum(totals[1], 1.0)
        # the optimizer sums these across replicas: the gradient of (total loss sum / positions)
        self.optimizer.apply([gradient / positions for gradient in gradients], self.model.trainable_variables)
        return tf.stack([totals[0] / positions, totals[1], totals[2]])

    def _train_steps(self, x, lengths, y, mask, weight, count):
        """Run ``count`` data-parallel optimizer steps; return (loss, positions, correct) per step."""
        strategy = self._strategy
        results = tf.zeros((self.steps_per_call, 3), tf.float32)

        def step(i, results):
            per_replica = strategy.run(self._replica_step, args=(i, x, lengths, y, mask, weight))
            row = strategy.experimental_local_results(per_replica)[0]  # equal on every replica
            return i + 1, tf.tensor_scatter_nd_update(results, [[i]], row[None, :])

        _, results = tf.while_loop(lambda i, _: i < count, step, (tf.constant(0), results))
        return results

    def compile(self, batch_shape: tuple[int, int, int], validation: Batches | None = None) -> float:
        """Trace the calls and compile each replica's step; returns the seconds spent.

        XLA compiles a replica's step only when it first runs, so one step is run on all-zero
        batches (zero weight: no gradient) and the state is then restored exactly.
        """
        started = time.perf_counter()
        batch, timesteps, features = batch_shape
        positions = timesteps if self.spec.task == PER_STEP else 1
        snapshot = self.state()
        with self._placement():
            dummy = Batches.zeros(self.steps_per_call, batch, timesteps, features, positions)
            self._train_call(*self._call_arguments(dummy, 1)).numpy()
        self.load_state(snapshot)
        if validation is not None:
            self.evaluate(validation.slice(0, 1))
        return time.perf_counter() - started


_strategies: dict[tuple[str, ...], object] = {}


def mirrored_strategy(device: DeviceInfo):
    """The process's MirroredStrategy over ``device.names``: the model (built in
    :func:`placed`) and the engine must share one strategy to share mirrored variables."""
    key = tuple(device.names)
    if key not in _strategies:
        _strategies[key] = tf.distribute.MirroredStrategy(list(key))
    return _strategies[key]


def placed(device: DeviceInfo):
    """A context in which new variables (a model being built or loaded) live on ``device``
    (on several devices: mirrored on each, in the strategy's scope)."""
    return tf.device(device.name) if device.devices == 1 else mirrored_strategy(device).scope()


def predictor(model: keras.Model, device: DeviceInfo):
    """A compiled ``(x, lengths) -> probabilities`` function of a model, on ``device``."""
    call = tf.function(lambda x, lengths: model([x, lengths], training=False))

    def predict(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        with tf.device(device.name):
            return call(x, lengths).numpy()

    return predict
