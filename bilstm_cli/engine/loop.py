"""The epoch loop around an engine: logging, validation, checkpoints, early stopping,
reduce-on-plateau, NaN handling and Ctrl-C, for the C runs (copies) one program trains at once (``train``: one).

It never branches on the backend and never prints: progress goes through callbacks. Each copy
keeps its own history, early stopping (a copy that stops is frozen: it keeps its weights and
step count while the others go on, and gets its best weights back at the end) and NaN check,
so a copy's numbers do not depend on which other runs share its program.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..data.batches import Batches
from ..errors import TrainingError
from ..limits import MAX_CALL_BYTES
from .history import History, LogRecord

# A chunk (one compiled call, or a few) lasts about this long at most, so Ctrl-C and SIGTERM
# stop a run within a second or two whatever its size. Where chunks end changes no numbers.
CHUNK_SECONDS = 1.0


class BatchSource(Protocol):
    steps_per_epoch: int
    timesteps: int

    def batches(self, start_epoch: int, stop_epoch: int) -> Batches: ...
    def step_batches(self, epoch: int, start: int, stop: int) -> Batches: ...


class Trainer(Protocol):
    """What the loop needs from an engine (see :class:`bilstm_cli.engine.base.Engine`)."""

    steps_per_call: int
    active: np.ndarray
    learning_rates: np.ndarray

    def set_learning_rate(self, copy: int, rate: float) -> None: ...
    def learning_rates_at(self, steps) -> np.ndarray: ...
    def train(self, batches: Sequence[Batches]) -> np.ndarray: ...
    def evaluate(self, batches) -> np.ndarray: ...  # Batches, or StreamedBatches (parts())
    def copy_state(self, copy: int) -> list[np.ndarray]: ...
    def set_copy_state(self, copy: int, values: Sequence[np.ndarray]) -> None: ...


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
    early_stopping_start_from: int = 0  # no stopping before this epoch
    plateau_patience: int | None = None  # None: no reduce-on-plateau
    plateau_factor: float = 0.5
    copy_epochs: Sequence[int] | None = None  # each copy's last epoch (a refit's); None: ``epochs``


@dataclass
class FitCallbacks:
    """``on_log`` reports the mean of ``log_copies`` still training (``train``: its one copy, or
    its ensemble's members); ``on_checkpoint`` is called while any copy trains, with copy 0's
    history (``progress``, updated in place, holds every copy's)."""

    on_log: Callable[[LogRecord], None] = lambda record: None
    on_progress: Callable[[int], None] = lambda epoch: None
    on_checkpoint: Callable[[int, History], None] = lambda epoch, history: None
    should_stop: Callable[[], bool] = lambda: False
    log_copies: tuple[int, ...] = (0,)


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


@dataclass
class PlateauState:
    """Reduce-on-plateau so far (Keras' ``ReduceLROnPlateau`` at logged epochs): the best
    validation loss, the epoch patience counts from (the best one or the last reduction) and
    the copy's lowered learning rate (None: still its configured one). A checkpoint saves it."""

    best_loss: float = math.inf
    since: int = 0
    learning_rate: float | None = None

    def to_meta(self) -> dict:
        best = None if math.isinf(self.best_loss) else self.best_loss
        return {"best_loss": best, "since": self.since, "learning_rate": self.learning_rate}

    @classmethod
    def from_meta(cls, meta: dict | None) -> PlateauState:
        if not meta:
            return cls()
        best = meta.get("best_loss")
        return cls(math.inf if best is None else float(best), int(meta.get("since", 0)), meta.get("learning_rate"))


@dataclass
class CopyProgress:
    """One copy's run so far: its history, early stopping, reduce-on-plateau and where it stopped."""

    history: History = field(default_factory=History)
    stopping: EarlyStoppingState = field(default_factory=EarlyStoppingState)
    plateau: PlateauState = field(default_factory=PlateauState)
    stopped: str | None = None
    epochs_run: int = 0
    window_start: int = 0
    # an epoch in progress (one that takes several compiled calls): its steps' (loss, positions,
    # correct) so far; a checkpoint saves them, so a run resumed mid-epoch records the same epoch
    partial: list[np.ndarray] = field(default_factory=list)

    @property
    def partial_steps(self) -> int:
        return sum(len(part) for part in self.partial)

    def partial_results(self) -> np.ndarray:
        """``(steps, 3)``: the epoch in progress so far."""
        return np.concatenate(self.partial) if self.partial else np.zeros((0, 3), np.float32)


class NonFiniteLoss(TrainingError):
    """The loss became NaN or infinite; ``epoch`` is the first bad one (1-based)."""

    def __init__(self, epoch: int, history: History, copy: int = 0):
        super().__init__(
            f"the training loss became NaN or infinite at epoch {epoch}",
            "lower the learning rate (e.g. --learning-rate 0.001) or check the data for extreme values",
        )
        self.epoch = epoch
        self.history = history
        self.copy = copy


def fit(
    engine: Trainer,
    sources: Sequence[BatchSource],
    plan: FitPlan,
    validation=None,  # Batches or StreamedBatches (anything with parts())
    callbacks: FitCallbacks | None = None,
    progress: Sequence[CopyProgress] | None = None,
) -> list[FitResult]:
    """Train epochs ``plan.start_epoch + 1 .. plan.epochs`` of every copy, validating every ``log_every``.

    Chunks end at every log and checkpoint epoch (absolute epoch numbers, so a resumed run
    stops at the same places). Between chunks the loop checks ``should_stop`` (Ctrl-C),
    non-finite losses and early stopping.

    Args:
        engine: the backend's compiled training and evaluation calls for C copies.
        sources: one batch source per data stream the engine's copies train on.
        plan: epochs, logging, checkpoints, early stopping.
        validation: scored at every logged epoch (None: no validation).
        callbacks: logged rows and checkpoints (of copy 0), progress, Ctrl-C.
        progress: each copy's state so far (resume: its history and early stopping);
            updated in place, so the ``on_checkpoint`` callback can save it.

    Returns:
        One result per copy; a copy whose loss became non-finite raises :class:`NonFiniteLoss`.
    """
    callbacks = callbacks or FitCallbacks()
    copies = len(engine.active)
    progress = list(progress) if progress is not None else [CopyProgress() for _ in range(copies)]
    for copy, run in enumerate(progress):
        if run.stopped == "early-stopping":  # resumed: it stopped before the checkpoint, and stays frozen
            engine.active[copy] = False
            continue
        run.epochs_run = run.window_start = plan.start_epoch
        if run.plateau.learning_rate is not None:  # resumed after the rate was lowered
            engine.set_learning_rate(copy, run.plateau.learning_rate)
    epoch = plan.start_epoch
    # steps of epoch + 1 trained already (resumed mid-epoch): the same for every copy still training
    offset = max(run.partial_steps for run in progress)
    elapsed_before = max((run.history.elapsed[-1] for run in progress if run.history.elapsed), default=0.0)
    started = time.perf_counter()
    steps_per_epoch = sources[0].steps_per_epoch
    epochs_per_call = max(1, engine.steps_per_call // steps_per_epoch)
    # an epoch longer than one compiled call trains in chunks of steps (a multiple of the call)
    steps_per_chunk = engine.steps_per_call if steps_per_epoch > engine.steps_per_call else 0
    chunk_sized = False  # sized to CHUNK_SECONDS after the first chunk of steps, then only shrinks
    interrupted = False
    last_checkpoint = time.perf_counter()

    prefetch = _Prefetch(lambda key: _make_batches(sources, key))
    try:
        while epoch < plan.epochs and engine.active.any():
            if callbacks.should_stop():
                interrupted = True
                break
            chunk_started = time.perf_counter()
            if steps_per_chunk or offset:
                stop = min(steps_per_epoch, offset + max(steps_per_chunk, 1))
                following = _next_steps(epoch, stop, steps_per_epoch, max(steps_per_chunk, 1), plan)
                batches = prefetch.take((epoch, offset, stop), following)
                results = engine.train(batches)
                per_call = (time.perf_counter() - chunk_started) / _calls(stop - offset, engine)
                # about a second of calls, and no more batches at once than MAX_CALL_BYTES (a
                # streamed file's memory bound holds however fast the device is)
                call_bytes = sum(a.nbytes for b in batches for a in b.arrays()) / _calls(stop - offset, engine)
                most = max(1, int(MAX_CALL_BYTES // max(call_bytes, 1)))
                calls = _epochs_within(CHUNK_SECONDS, per_call, most) * engine.steps_per_call
                steps_per_chunk = min(steps_per_chunk, calls) if chunk_sized else calls
                chunk_sized = True
                for copy in np.flatnonzero(engine.active):
                    progress[copy].partial.append(results[:, copy])
                offset = stop
                if offset < steps_per_epoch:
                    if engine.active.any() and time.perf_counter() - last_checkpoint >= plan.checkpoint_seconds:
                        callbacks.on_checkpoint(epoch, progress[0].history)
                        last_checkpoint = time.perf_counter()
                    continue
                results = np.zeros((steps_per_epoch, copies, 3), np.float32)
                for copy in np.flatnonzero(engine.active):
                    results[:, copy], progress[copy].partial = progress[copy].partial_results(), []
                offset, chunk_end = 0, epoch + 1
            else:
                chunk_end = _chunk_end(epoch, plan, epochs_per_call)
                following = None
                if chunk_end < plan.epochs:
                    following = (chunk_end, _chunk_end(chunk_end, plan, epochs_per_call))
                results = engine.train(prefetch.take((epoch, chunk_end), following))
                per_epoch = (time.perf_counter() - chunk_started) / (chunk_end - epoch)
                # only ever shrinks: a steady chunk size keeps the prefetched batches useful
                epochs_per_call = min(epochs_per_call, _epochs_within(CHUNK_SECONDS, per_epoch, epochs_per_call))
            now = elapsed_before + time.perf_counter() - started
            # each epoch's rate: that of its last step (copies that train have taken every step)
            last_steps = np.arange(epoch + 1, chunk_end + 1) * steps_per_epoch - 1
            rates = engine.learning_rates_at(last_steps)
            for copy in np.flatnonzero(engine.active):
                run = progress[copy]
                _record_epochs(run.history, epoch, results[:, copy], steps_per_epoch, now, int(copy), rates[:, copy])
                progress[copy].epochs_run = chunk_end
            epoch = chunk_end
            if plan.copy_epochs is not None:  # copies that reached their own last epoch freeze
                for copy in np.flatnonzero(engine.active):
                    if epoch >= plan.copy_epochs[copy]:
                        engine.active[copy] = False
            callbacks.on_progress(epoch)

            logged = epoch % plan.log_every == 0 or epoch == plan.epochs
            if logged:
                _validate(engine, validation, epoch, plan, progress, callbacks)
            if engine.active.any() and _checkpoint_due(plan, epoch, logged, time.perf_counter() - last_checkpoint):
                callbacks.on_checkpoint(epoch, progress[0].history)
                last_checkpoint = time.perf_counter()
    finally:
        prefetch.close()

    seconds = time.perf_counter() - started
    results = []
    for copy, run in enumerate(progress):
        stopped = "interrupted" if interrupted and run.stopped is None else run.stopped
        best = run.stopping
        # early stopping keeps the best weights, also when the epoch cap came first
        if stopped != "interrupted" and best.best_state is not None and best.best_epoch != run.epochs_run:
            engine.set_copy_state(copy, best.best_state)
        results.append(FitResult(run.history, run.epochs_run, stopped, best.best_epoch, seconds))
    return results


def _validate(engine: Trainer, validation, epoch: int, plan: FitPlan, progress, callbacks) -> None:
    """Score every active copy at a logged epoch; log the mean of ``callbacks.log_copies``
    still training; apply early stopping per copy."""
    scores = engine.evaluate(validation) if validation is not None else None
    records = []
    for copy in np.flatnonzero(engine.active):
        run = progress[copy]
        history = run.history
        val_loss = val_accuracy = None
        if scores is not None:
            val_loss, val_accuracy = float(scores[copy, 0]), float(scores[copy, 1])
            if not math.isfinite(val_loss):  # this epoch's update broke the weights
                raise NonFiniteLoss(epoch, history.truncate(len(history) - 1), int(copy))
            history.val_loss[-1], history.val_accuracy[-1] = val_loss, val_accuracy
        if copy in callbacks.log_copies:
            window = epoch - run.window_start
            records.append(
                LogRecord(
                    epoch,
                    _window_mean(history.loss, window),
                    _window_mean(history.accuracy, window),
                    val_loss,
                    val_accuracy,
                    history.elapsed[-1],
                    history.learning_rate[-1],
                )
            )
        run.window_start = epoch
        if plan.plateau_patience and val_loss is not None:
            _reduce_on_plateau(engine, int(copy), run.plateau, val_loss, epoch, plan)
        if plan.early_stopping_patience and val_loss is not None:
            stopping = run.stopping
            if val_loss < stopping.best_loss - plan.early_stopping_min_delta:
                stopping.best_loss, stopping.best_epoch = val_loss, epoch
                stopping.best_state = engine.copy_state(int(copy))
            elif (
                stopping.best_epoch is not None
                and epoch - stopping.best_epoch >= plan.early_stopping_patience
                and epoch >= plan.early_stopping_start_from
            ):
                run.stopped = "early-stopping"
                engine.active[copy] = False  # frozen from the next step on
    if records:
        callbacks.on_log(records[0] if len(records) == 1 else _mean_record(records))


def _mean_record(records: list[LogRecord]) -> LogRecord:
    """The logged row of several copies (an ensemble's members): their mean scores."""

    def mean(values):
        values = [value for value in values if value is not None]
        return float(np.mean(values)) if values else None

    first = records[0]
    return LogRecord(
        first.epoch,
        mean([r.loss for r in records]),
        mean([r.accuracy for r in records]),
        mean([r.val_loss for r in records]),
        mean([r.val_accuracy for r in records]),
        max(r.elapsed for r in records),
        first.learning_rate,
    )


def _reduce_on_plateau(engine: Trainer, copy: int, plateau: PlateauState, val_loss: float, epoch: int, plan) -> None:
    """Lower a copy's learning rate by ``plan.plateau_factor`` when its validation loss has not
    improved for ``plan.plateau_patience`` epochs (then count patience from this epoch again)."""
    if val_loss < plateau.best_loss:
        plateau.best_loss, plateau.since = val_loss, epoch
    elif epoch - plateau.since >= plan.plateau_patience:
        plateau.learning_rate = float(engine.learning_rates[copy]) * plan.plateau_factor
        engine.set_learning_rate(copy, plateau.learning_rate)
        plateau.since = epoch


def _record_epochs(
    history: History,
    first: int,
    results: np.ndarray,
    steps_per_epoch: int,
    now: float,
    copy: int = 0,
    rates: np.ndarray | None = None,
) -> None:
    """Append the epochs after ``first`` from per-step ``(loss, positions, correct)`` results.

    An epoch's loss is the position-weighted mean of its steps' losses, so it equals what one
    pass over the epoch's data would report. Raises NonFiniteLoss at the first bad epoch,
    with the history of the good ones.
    """
    per_epoch = results.reshape(-1, steps_per_epoch, 3).astype(np.float64)
    positions = np.maximum(per_epoch[..., 1].sum(axis=1), 1)
    losses = per_epoch[..., 0].sum(axis=1) / positions
    accuracies = per_epoch[..., 2].sum(axis=1) / positions
    finite = np.isfinite(losses)
    good = int(np.argmin(finite)) if not finite.all() else len(losses)
    for offset in range(good):
        history.epoch.append(first + offset + 1)
        history.loss.append(float(losses[offset]))
        history.accuracy.append(float(accuracies[offset]))
        history.val_loss.append(math.nan)
        history.val_accuracy.append(math.nan)
        history.learning_rate.append(math.nan if rates is None else float(rates[offset]))
        history.elapsed.append(now)
    if good < len(losses):
        raise NonFiniteLoss(first + good + 1, history, copy)


def _epochs_within(seconds: float, per_epoch: float, most: int) -> int:
    """How many epochs fit in ``seconds`` at ``per_epoch`` each: at least one, at most ``most``."""
    return int(max(1, min(most, seconds // per_epoch if per_epoch > 0 else most)))


def _chunk_end(epoch: int, plan: FitPlan, epochs_per_call: int) -> int:
    """The last epoch of the chunk that starts after ``epoch``: the next log or checkpoint
    boundary, or as many epochs as one compiled call holds."""
    return min(_next_boundary(epoch, plan), epoch + epochs_per_call)


def _make_batches(sources: Sequence[BatchSource], key: tuple) -> list[Batches]:
    """Every stream's batches of a chunk: ``(start_epoch, stop_epoch)`` for whole epochs, or
    ``(epoch, start_step, stop_step)`` for part of one (0-based epoch)."""
    if len(key) == 2:
        return [source.batches(*key) for source in sources]
    return [source.step_batches(*key) for source in sources]


def _next_steps(epoch: int, stop: int, steps_per_epoch: int, steps_per_chunk: int, plan: FitPlan) -> tuple | None:
    """The chunk of steps after the one that ends at ``stop`` (to prefetch), if any."""
    if stop < steps_per_epoch:
        return (epoch, stop, min(steps_per_epoch, stop + steps_per_chunk))
    if epoch + 1 < plan.epochs:
        return (epoch + 1, 0, min(steps_per_epoch, steps_per_chunk))
    return None


def _calls(steps: int, engine: Trainer) -> int:
    return max(1, math.ceil(steps / engine.steps_per_call))


class _Prefetch:
    """Makes the next chunk's batches in a background thread while the current one trains.

    Making batches is numpy and Python work; the compiled training call runs without the GIL,
    so on two cores the two overlap. The batches are a pure function of the chunk (each
    epoch's data comes from its own seeded stream), so making them early changes nothing.
    """

    def __init__(self, make: Callable[[tuple], Any]):
        from concurrent.futures import ThreadPoolExecutor

        self._make = make
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bilstm-batches")
        self._next: tuple[tuple, Any] | None = None

    def take(self, key: tuple, following: tuple | None) -> Any:
        """The batches of chunk ``key``; starts making those of chunk ``following``."""
        if self._next is not None and self._next[0] == key:
            batches = self._next[1].result()
        else:
            if self._next is not None and not self._next[1].cancel():
                self._next[1].exception()  # let it finish: a source is read by one thread at a time
            batches = self._make(key)
        self._next = None
        if following is not None:
            self._next = (following, self._pool.submit(self._make, following))
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
    if plan.copy_epochs is not None:
        candidates += [last for last in plan.copy_epochs if last > epoch]
    if plan.checkpoint_every:
        candidates.append((epoch // plan.checkpoint_every + 1) * plan.checkpoint_every)
    return min(candidates)


def _window_mean(values: list[float], count: int) -> float:
    return float(np.mean(values[-count:])) if count > 0 else math.nan
