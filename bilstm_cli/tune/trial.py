"""Training one trial of a search, in this process, with a pruning callback.

The trial's validation score is reported to Optuna at every logged epoch; when the pruner
says so, the epoch loop is asked to stop at its next chunk (the same path as Ctrl-C), so a
pruned trial trains fewer epochs. Scores are on the search's validation data only: the
search's data section never names a test file.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..compare.execute import final_scores, job_data
from ..config.schema import Config
from ..engine.loop import FitCallbacks, NonFiniteLoss
from ..engine.session import TrainingSession


def quiet_retracing() -> None:
    """Every trial compiles its own program: TensorFlow's "triggered tf.function retracing"
    warning is expected here, not advice (shown with --debug)."""
    import logging
    import os

    if not os.environ.get("BILSTM_DEBUG"):
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


@dataclass
class TrialOutcome:
    """How a trial ended: ``state`` is complete, pruned, failed or interrupted."""

    state: str
    score: float | None
    epochs_run: int
    seconds: float
    reported: list[tuple[int, float]] = field(default_factory=list)
    error: str | None = None
    pid: int = field(default_factory=os.getpid)  # the process that trained it


def train_trial(
    config: Config,
    seed: int,
    device,
    files,
    prepared: dict,
    metric: str,
    report: Callable[[float, int], bool],
    should_stop: Callable[[], bool],
) -> TrialOutcome:
    """Train ``config`` from ``seed``; ``report(score, epoch)`` returns True to prune."""
    started = time.perf_counter()
    if config.data.test_path is not None:  # the search never sees the test data
        raise ValueError("a search trial's data must not name a test file")
    data = job_data("search", config, seed, files, prepared)
    session = TrainingSession([config], [seed], data, device)
    reported: list[tuple[int, float]] = []
    pruned = False

    def on_log(record) -> None:
        nonlocal pruned
        value = record.val_accuracy if metric == "accuracy" else record.val_loss
        if value is None or not math.isfinite(value) or pruned:
            return
        reported.append((record.epoch, float(value)))
        if report(float(value), record.epoch):
            pruned = True

    try:
        session.compile()
        (result,) = session.fit(FitCallbacks(on_log=on_log, should_stop=lambda: pruned or should_stop()))
    except NonFiniteLoss as exc:
        return TrialOutcome("failed", None, exc.epoch, time.perf_counter() - started, reported, str(exc.message))
    seconds = time.perf_counter() - started
    if pruned:
        return TrialOutcome("pruned", reported[-1][1], result.epochs_run, seconds, reported)
    if result.stopped == "interrupted":
        return TrialOutcome("interrupted", None, result.epochs_run, seconds, reported)
    # a k-fold ensemble is scored out of fold: each member on the fold it did not train on
    final = final_scores(result, None, session.validation_scores()[0] if session.members > 1 else None)
    score = final["accuracy"] if metric == "accuracy" else final["loss"]
    if score is None:
        return TrialOutcome("failed", None, result.epochs_run, seconds, reported, "no validation score")
    return TrialOutcome("complete", float(score), result.epochs_run, seconds, reported)
