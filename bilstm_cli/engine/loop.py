"""The epoch loop around a backend's engine: logging, validation, checkpoints, early
stopping, NaN handling and Ctrl-C. It never branches on the backend, and never prints:
progress goes through callbacks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..data.batches import Batches
from ..errors import TrainingError
from .history import History, LogRecord


class Engine(Protocol):
    """What the loop needs from a backend's engine (see :mod:`bilstm_cli.engine.tensorflow`)."""

    steps_per_call: int

    def train(self, batches: Batches) -> np.ndarray:
        """Train on every step; return ``(steps, 3)``: loss, labelled positions, correct."""

    def evaluate(self, batches: Batches) -> tuple[float, float]:
        """Mean loss and accuracy over the real positions (no class weights)."""

    def state(self) -> list[np.ndarray]:
        """Every model and optimizer variable, for checkpoints and best weights."""

    def load_state(self, values: list[np.ndarray]) -> None: ...


class BatchSource(Protocol):
    steps_per_epoch: int
    timesteps: int

    def batches(self, start_epoch: int, stop_epoch: int) -> Batches: ...


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


@dataclass
class EarlyStoppingState:
    """What early stopping has seen so far: the best validation loss, its epoch and weights.

    :func:`fit` updates it in place; a checkpoint saves it, so a resumed run counts its
    patience from the same best epoch and restores the same best weights as an uninterrupted
    one. (How long since the best epoch follows from the epoch the run has reached.)
    """

    best_loss: float = math.inf
    best_epoch: int | None = None
    best_state: list[np.ndarray] | None = None

    def to_meta(self) -> dict:
        """The scalars, for a checkpoint's JSON metadata (the weights are saved as arrays)."""
        return {"best_loss": None if self.best_epoch is None else self.best_loss, "best_epoch": self.best_epoch}

    @classmethod
    def from_meta(cls, meta: dict | None, best_state: list[np.ndarray] | None) -> EarlyStoppingState:
        if not meta or meta.get("best_epoch") is None:
            return cls()
        return cls(float(meta["best_loss"]), int(meta["best_epoch"]), best_state)


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
    engine: Engine,
    source: BatchSource,
    plan: FitPlan,
    validation: Batches | None = None,
    callbacks: FitCallbacks | None = None,
    history: History | None = None,
    early_stopping: EarlyStoppingState | None = None,
) -> FitResult:
    """Train epochs ``plan.start_epoch + 1 .. plan.epochs``, validating every ``log_every``.

    Chunks end at every log and checkpoint epoch (absolute epoch numbers, so a resumed run
    stops at the same places). Between chunks the loop checks ``should_stop`` (Ctrl-C),
    non-finite losses and early stopping.

    Args:
        engine: the backend's compiled training and evaluation calls.
        source: the training batches of each epoch.
        plan: epochs, logging, checkpoints, early stopping.
        validation: scored at every logged epoch (None: no validation).
        callbacks: logged rows, progress, checkpoints, Ctrl-C.
        history: the epochs run so far (resume); appended to in place.
        early_stopping: early stopping's state so far (resume); updated in place, so the
            ``on_checkpoint`` callback can save it.
    """
    callbacks = callbacks or FitCallbacks()
    history = history if history is not None else History()
    stopping = early_stopping if early_stopping is not None else EarlyStoppingState()
    epoch = plan.start_epoch
    elapsed_before = history.elapsed[-1] if history.elapsed else 0.0
    started = time.perf_counter()
    epochs_per_call = max(1, engine.steps_per_call // source.steps_per_epoch)
    stopped = None
    window_start = epoch
    last_checkpoint = time.perf_counter()

    prefetch = _Prefetch(source.batches)
    try:
        while epoch < plan.epochs:
            if callbacks.should_stop():
                stopped = "interrupted"
                break
            chunk_end = _chunk_end(epoch, plan, epochs_per_call)
            results = engine.train(prefetch.take(epoch, chunk_end, plan, epochs_per_call))
            _record_epochs(
                history, epoch, results, source.steps_per_epoch, elapsed_before + time.perf_counter() - started
            )
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
                    history.elapsed[-1],
                )
                window_start = epoch
                callbacks.on_log(record)
                if plan.early_stopping_patience and val_loss is not None:
                    if val_loss < stopping.best_loss - plan.early_stopping_min_delta:
                        stopping.best_loss, stopping.best_epoch, stopping.best_state = val_loss, epoch, engine.state()
                    elif (
                        stopping.best_epoch is not None and epoch - stopping.best_epoch >= plan.early_stopping_patience
                    ):
                        stopped = "early-stopping"
            if not stopped and _checkpoint_due(plan, epoch, logged, time.perf_counter() - last_checkpoint):
                callbacks.on_checkpoint(epoch, history)
                last_checkpoint = time.perf_counter()
            if stopped:
                break
    finally:
        prefetch.close()

    # early stopping keeps the best weights, also when the epoch cap came first
    if stopped != "interrupted" and stopping.best_state is not None and stopping.best_epoch != epoch:
        engine.load_state(stopping.best_state)
    return FitResult(history, epoch, stopped, stopping.best_epoch, time.perf_counter() - started)


class RepeatsEngine(Protocol):
    """What :func:`fit_repeats` needs: R runs of one variant trained as one program."""

    steps_per_call: int

    def train(self, batches: Sequence[Batches]) -> np.ndarray:
        """Train run r on ``batches[r]``; return ``(R, steps, 3)``."""

    def evaluate(self, batches: Batches) -> list[tuple[float, float]]:
        """Every run's mean loss and accuracy on the shared validation batches."""


def fit_repeats(
    engine: RepeatsEngine,
    sources: Sequence[BatchSource],
    plan: FitPlan,
    validation: Batches | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[FitResult]:
    """:func:`fit` for R repeats trained together: the same chunks, logged epochs and
    validation points as R separate runs, so each repeat's history matches its sequential
    run (within floating-point tolerance). No checkpoints or early stopping (``compare``
    runs every repeat for the same epochs); ``should_stop`` ends all repeats at a chunk
    boundary, returning results marked ``interrupted``.
    """
    if plan.early_stopping_patience or plan.checkpoint_every or plan.start_epoch:
        raise ValueError("fit_repeats runs whole comparisons: no early stopping, checkpoints or resume")
    histories = [History() for _ in sources]
    steps_per_epoch = sources[0].steps_per_epoch
    epochs_per_call = max(1, engine.steps_per_call // steps_per_epoch)
    started = time.perf_counter()
    epoch, stopped = 0, None
    prefetch = _Prefetch(lambda start, stop: [source.batches(start, stop) for source in sources])
    try:
        while epoch < plan.epochs:
            if should_stop():
                stopped = "interrupted"
                break
            chunk_end = _chunk_end(epoch, plan, epochs_per_call)
            results = engine.train(prefetch.take(epoch, chunk_end, plan, epochs_per_call))
            now = time.perf_counter() - started
            for history, repeat_results in zip(histories, results):
                _record_epochs(history, epoch, repeat_results, steps_per_epoch, now)
            epoch = chunk_end
            if validation is not None and (epoch % plan.log_every == 0 or epoch == plan.epochs):
                for history, (val_loss, val_accuracy) in zip(histories, engine.evaluate(validation)):
                    if not math.isfinite(val_loss):
                        raise NonFiniteLoss(epoch, history.truncate(len(history) - 1))
                    history.val_loss[-1], history.val_accuracy[-1] = val_loss, val_accuracy
    finally:
        prefetch.close()
    seconds = time.perf_counter() - started
    return [FitResult(history, epoch, stopped, None, seconds) for history in histories]


def _record_epochs(history: History, first: int, results: np.ndarray, steps_per_epoch: int, now: float) -> None:
    """Append the epochs after ``first`` from per-step ``(loss, positions, correct)`` results.

    An epoch's loss is the position-weighted mean of its steps' losses, so it equals what one
    pass over the epoch's data would report. Raises NonFiniteLoss at the first bad epoch,
    with the history of the good ones.
    """
    per_epoch = results.reshape(-1, steps_per_epoch, 3)
    positions = np.maximum(per_epoch[..., 1].sum(axis=1), 1)
    losses = (per_epoch[..., 0] * per_epoch[..., 1]).sum(axis=1) / positions
    accuracies = per_epoch[..., 2].sum(axis=1) / positions
    finite = np.isfinite(losses)
    good = int(np.argmin(finite)) if not finite.all() else len(losses)
    for offset in range(good):
        history.epoch.append(first + offset + 1)
        history.loss.append(float(losses[offset]))
        history.accuracy.append(float(accuracies[offset]))
        history.val_loss.append(math.nan)
        history.val_accuracy.append(math.nan)
        history.elapsed.append(now)
    if good < len(losses):
        raise NonFiniteLoss(first + good + 1, history)


def _chunk_end(epoch: int, plan: FitPlan, epochs_per_call: int) -> int:
    """The last epoch of the chunk that starts after ``epoch``: the next log or checkpoint
    boundary, or as many epochs as one compiled call holds."""
    return min(_next_boundary(epoch, plan), epoch + epochs_per_call)


class _Prefetch:
    """Makes the next chunk's batches in a background thread while the current one trains.

    Making batches is numpy and Python work; the compiled training call runs without the GIL,
    so on two cores the two overlap. The batches are a pure function of the epochs (each
    epoch's data comes from its own seeded stream), so making them early changes nothing.
    """

    def __init__(self, make: Callable[[int, int], Any]):
        from concurrent.futures import ThreadPoolExecutor

        self._make = make
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bilstm-batches")
        self._next: tuple[tuple[int, int], Any] | None = None

    def take(self, start: int, stop: int, plan: FitPlan, epochs_per_call: int) -> Any:
        """The batches of epochs ``start+1..stop``; starts making the following chunk's."""
        if self._next is not None and self._next[0] == (start, stop):
            batches = self._next[1].result()
        else:
            batches = self._make(start, stop)
        self._next = None
        if stop < plan.epochs:
            following = (stop, _chunk_end(stop, plan, epochs_per_call))
            self._next = (following, self._pool.submit(self._make, *following))
        return batches

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


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
