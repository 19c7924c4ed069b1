"""The fast training engine and the epoch loop around it.

Instead of one ``model.fit`` per epoch (about 110 ms of overhead per tutorial step), the
engine runs many optimizer steps inside one compiled TensorFlow call (a ``while`` loop,
XLA-compiled on CPU; cuDNN kernels on GPU) and returns every step's loss and accuracy, so
per-epoch curves are still exact. No printing here: progress goes through callbacks.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from .batches import Batches
from .data import PER_STEP
from .errors import TrainingError
from .spec import ModelSpec

# XLA pays off on CPU while one step is small: per-op overhead dominates there and XLA fuses
# it away (measured: 0.3 ms vs 2.6 ms per step at T=10, batch 1). For large steps a plain
# graph is as fast or faster, and XLA's recurrent loop grows worse than linearly with T
# (batch 64: 40 vs 30 ms at T=100, 640 vs 250 ms at T=1000).
XLA_MAX_STEP_VALUES = 2048

# Upper bound on the arrays fed to one compiled call (steps x batch x T x F floats).
MAX_CALL_BYTES = 64 * 2**20
MAX_STEPS_PER_CALL = 1000


def use_xla(setting: bool | str, device_kind: str, batch_size: int, timesteps: int) -> bool:
    """Whether to XLA-compile the training loop: the setting if explicit, else ``auto``:
    on CPU when ``batch_size x timesteps <= XLA_MAX_STEP_VALUES``, never on GPU (where the
    cuDNN LSTM kernel is used, which XLA cannot compile)."""
    if setting != "auto":
        return bool(setting)
    return device_kind == "cpu" and batch_size * timesteps <= XLA_MAX_STEP_VALUES


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    optimizers = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}
    return optimizers[name](learning_rate=float(learning_rate))


def batch_terms(spec: ModelSpec, y, predictions, mask, weight):
    """Weighted loss sum, number of labelled positions and correct positions of one batch.

    ``y``/``mask``/``weight`` are ``(batch, P)``; predictions ``(batch, P, 1|C)`` per step or
    ``(batch, 1|C)`` per sequence. Loss and accuracy follow Keras' binary / sparse
    categorical cross-entropy and accuracy (threshold 0.5), restricted to real positions.
    """
    if spec.task != PER_STEP:
        predictions = ops.expand_dims(predictions, 1)
    if spec.binary:
        probability = predictions[..., 0]
        losses = ops.binary_crossentropy(ops.cast(y, probability.dtype), probability)
        predicted = ops.cast(probability > 0.5, y.dtype)
    else:
        losses = ops.sparse_categorical_crossentropy(y, predictions)
        predicted = ops.cast(ops.argmax(predictions, axis=-1), y.dtype)
    hits = ops.cast(ops.equal(predicted, y), mask.dtype)
    return ops.sum(losses * weight), ops.sum(mask), ops.sum(hits * mask)


class TrainingEngine:
    """A model, its optimizer and the compiled multi-step training and evaluation calls.

    Args:
        model: built by :func:`bilstm_cli.models.build_model`.
        spec: the model's data spec (binary or C classes, per-step or per-sequence).
        optimizer: ``adam``, ``sgd`` or ``rmsprop``.
        learning_rate: optimizer learning rate.
        jit_compile: compile the training loop with XLA.
        steps_per_call: optimizer steps per compiled call (the arrays are padded to it).
        device: TensorFlow device string.

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
        device: str = "/CPU:0",
    ):
        if steps_per_call < 1:
            raise ValueError(f"steps_per_call must be >= 1. Received: steps_per_call={steps_per_call}")
        self.model = model
        self.spec = spec
        self.device = device
        self.steps_per_call = steps_per_call
        self.jit_compile = jit_compile
        with tf.device(device):
            self.optimizer = make_optimizer(optimizer, learning_rate)
            self.optimizer.build(model.trainable_variables)
        self._initial_optimizer_state = [v.numpy() for v in self.optimizer.variables]
        self._train_call = tf.function(self._train_steps, jit_compile=jit_compile)
        self._evaluate_call = tf.function(self._evaluate_batch)

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
        shape = (self.steps_per_call, batch)
        dummy = Batches(
            np.zeros((*shape, timesteps, features), np.float32),
            np.ones(shape, np.int32),
            np.zeros((*shape, positions), np.int32),
            np.zeros((*shape, positions), np.float32),
            np.zeros((*shape, positions), np.float32),
        )
        arguments = (*dummy.arrays(), tf.constant(0))
        started = time.perf_counter()
        with tf.device(self.device):
            self._train_call.get_concrete_function(*arguments)  # Python tracing: one thread at a time
        failures: list[BaseException] = []

        def compile_training_call() -> None:
            try:
                with tf.device(self.device):
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
            with tf.device(self.device):
                out = self._train_call(*part.padded_to(self.steps_per_call).arrays(), tf.constant(part.steps))
            results.append(out.numpy()[: part.steps])
        return np.concatenate(results) if results else np.zeros((0, 3), np.float32)

    def evaluate(self, batches: Batches) -> tuple[float, float]:
        """Mean loss and accuracy over the real positions of ``batches`` (no class weights)."""
        totals = np.zeros(3)
        with tf.device(self.device):
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

    def reset(self, initial_model: keras.Model) -> None:
        """Start again from ``initial_model``'s weights with a fresh optimizer state."""
        for variable, value in zip(self.model.variables, initial_model.variables):
            variable.assign(value)
        for variable, value in zip(self.optimizer.variables, self._initial_optimizer_state):
            variable.assign(value)


def steps_per_call(steps_per_epoch: int, epochs_per_log: int, batch_size: int, timesteps: int, features: int) -> int:
    """Steps per compiled call: one log window if it fits the memory and step caps."""
    step_bytes = batch_size * timesteps * max(features, 1) * 4 * 2
    by_memory = max(1, MAX_CALL_BYTES // step_bytes)
    return int(max(1, min(steps_per_epoch * epochs_per_log, MAX_STEPS_PER_CALL, by_memory)))


# ---------------------------------------------------------------------------- epoch loop


class BatchSource(Protocol):
    steps_per_epoch: int
    timesteps: int

    def batches(self, start_epoch: int, stop_epoch: int) -> Batches: ...


@dataclass
class LogRecord:
    """One logged row: the window's mean training loss/accuracy and the validation score."""

    epoch: int
    loss: float
    accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    elapsed: float


@dataclass
class History:
    """Every epoch's training loss/accuracy; validation at logged epochs (NaN elsewhere)."""

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    elapsed: list[float] = field(default_factory=list)

    COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "elapsed")

    def __len__(self) -> int:
        return len(self.epoch)

    def rows(self) -> list[tuple]:
        return list(zip(*(getattr(self, name) for name in self.COLUMNS)))

    def truncate(self, epochs: int) -> History:
        return History(*(list(getattr(self, name)[:epochs]) for name in self.COLUMNS))

    def to_dict(self) -> dict[str, list]:
        return {name: list(getattr(self, name)) for name in self.COLUMNS}

    @classmethod
    def from_dict(cls, data: dict[str, list]) -> History:
        return cls(*(list(data[name]) for name in cls.COLUMNS))

    def logged(self) -> list[int]:
        """Indices of epochs with a validation score."""
        return [i for i, value in enumerate(self.val_loss) if not math.isnan(value)]


@dataclass
class FitPlan:
    """Which epochs to run and where to pause.

    ``checkpoint_every``: epochs between checkpoints; None checkpoints at logged epochs, but
    no more often than every ``checkpoint_seconds`` of wall time (and always at the end).
    """

    epochs: int
    log_every: int
    checkpoint_every: int | None = None
    checkpoint_seconds: float = 30.0
    start_epoch: int = 0
    early_stopping_patience: int | None = None
    early_stopping_min_delta: float = 0.0


@dataclass
class FitCallbacks:
    on_log: Callable[[LogRecord], None] = lambda record: None
    on_progress: Callable[[int], None] = lambda epoch: None
    on_checkpoint: Callable[[int, History], None] = lambda epoch, history: None
    should_stop: Callable[[], bool] = lambda: False


@dataclass
class FitResult:
    history: History
    epochs_run: int
    stopped: str | None = None  # None, "interrupted" or "early-stopping"
    best_epoch: int | None = None
    train_seconds: float = 0.0


class NonFiniteLoss(TrainingError):
    """The loss became NaN or infinite; ``epoch`` is the first bad one (1-based)."""

    def __init__(self, epoch: int, history: History):
        super().__init__(
            f"the training loss became NaN or infinite at epoch {epoch}",
            "lower the learning rate (e.g. --learning-rate 0.001) or check the data for extreme values",
        )
        self.epoch = epoch
        self.history = history


def fit(
    engine: TrainingEngine,
    source: BatchSource,
    plan: FitPlan,
    validation: Batches | None = None,
    callbacks: FitCallbacks | None = None,
    history: History | None = None,
) -> FitResult:
    """Train epochs ``plan.start_epoch + 1 .. plan.epochs``, validating every ``log_every``.

    Chunks end at every log and checkpoint epoch (absolute epoch numbers, so a resumed run
    stops at the same places). Between chunks the loop checks ``should_stop`` (Ctrl-C),
    non-finite losses and early stopping.
    """
    callbacks = callbacks or FitCallbacks()
    history = history if history is not None else History()
    epoch = plan.start_epoch
    elapsed_before = history.elapsed[-1] if history.elapsed else 0.0
    started = time.perf_counter()
    epochs_per_call = max(1, engine.steps_per_call // source.steps_per_epoch)
    best_loss, best_epoch, best_state = math.inf, None, None
    stopped = None
    window_start = epoch
    last_checkpoint = time.perf_counter()

    while epoch < plan.epochs:
        if callbacks.should_stop():
            stopped = "interrupted"
            break
        boundary = _next_boundary(epoch, plan)
        chunk_end = min(boundary, epoch + epochs_per_call)
        results = engine.train(source.batches(epoch, chunk_end))
        per_epoch = results.reshape(chunk_end - epoch, source.steps_per_epoch, 3)
        losses = (per_epoch[..., 0] * per_epoch[..., 1]).sum(axis=1) / np.maximum(per_epoch[..., 1].sum(axis=1), 1)
        accuracies = per_epoch[..., 2].sum(axis=1) / np.maximum(per_epoch[..., 1].sum(axis=1), 1)
        finite = np.isfinite(losses)
        now = elapsed_before + time.perf_counter() - started
        good = int(np.argmin(finite)) if not finite.all() else len(losses)
        for offset in range(good):
            history.epoch.append(epoch + offset + 1)
            history.loss.append(float(losses[offset]))
            history.accuracy.append(float(accuracies[offset]))
            history.val_loss.append(math.nan)
            history.val_accuracy.append(math.nan)
            history.elapsed.append(now)
        if good < len(losses):
            raise NonFiniteLoss(epoch + good + 1, history)
        epoch = chunk_end
        callbacks.on_progress(epoch)

        logged = epoch % plan.log_every == 0 or epoch == plan.epochs
        if logged:
            val_loss = val_accuracy = None
            if validation is not None:
                val_loss, val_accuracy = engine.evaluate(validation)
                if not math.isfinite(val_loss):  # this epoch's update broke the weights
                    raise NonFiniteLoss(epoch, history.truncate(len(history) - 1))
                history.val_loss[-1], history.val_accuracy[-1] = val_loss, val_accuracy
            record = LogRecord(
                epoch,
                _window_mean(history.loss, epoch - window_start),
                _window_mean(history.accuracy, epoch - window_start),
                val_loss,
                val_accuracy,
                now,
            )
            window_start = epoch
            callbacks.on_log(record)
            if plan.early_stopping_patience and val_loss is not None:
                if val_loss < best_loss - plan.early_stopping_min_delta:
                    best_loss, best_epoch, best_state = val_loss, epoch, engine.state()
                elif best_epoch is not None and epoch - best_epoch >= plan.early_stopping_patience:
                    stopped = "early-stopping"
        if not stopped and _checkpoint_due(plan, epoch, logged, time.perf_counter() - last_checkpoint):
            callbacks.on_checkpoint(epoch, history)
            last_checkpoint = time.perf_counter()
        if stopped:
            break

    if stopped == "early-stopping" and best_state is not None:
        engine.load_state(best_state)
    return FitResult(history, epoch, stopped, best_epoch, time.perf_counter() - started)


def _checkpoint_due(plan: FitPlan, epoch: int, logged: bool, seconds_since: float) -> bool:
    """Scheduled checkpoints; the caller writes the last one when the loop ends or stops."""
    if epoch == plan.epochs:
        return False
    if plan.checkpoint_every:
        return epoch % plan.checkpoint_every == 0
    return logged and seconds_since >= plan.checkpoint_seconds


def _next_boundary(epoch: int, plan: FitPlan) -> int:
    candidates = [plan.epochs, (epoch // plan.log_every + 1) * plan.log_every]
    if plan.checkpoint_every:
        candidates.append((epoch // plan.checkpoint_every + 1) * plan.checkpoint_every)
    return min(candidates)


def _window_mean(values: list[float], count: int) -> float:
    return float(np.mean(values[-count:])) if count > 0 else math.nan
