"""A short measured probe of a session's program, for ``--dry-run``'s time estimate: compile it,
train a few log windows from the initial weights, and scale that to the whole run. Nothing is
saved; the session can be thrown away afterwards."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from .loop import CopyProgress, FitCallbacks, FitPlan, fit

PROBE_STEPS = 50  # optimizer steps the probe trains at least (one log window at least)
PROBE_SECONDS = 1.0  # and about this long


@dataclass
class Probe:
    compile_seconds: float
    epochs: float  # epochs the probe trained (a fraction of one where an epoch is long)
    seconds: float  # their wall time, validation at the run's log interval included
    copies: int  # runs trained together in the probed program

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / max(self.epochs, 1e-9)

    def training_seconds(self, epochs: int, copies: int | None = None) -> float:
        """Training time of ``epochs`` epochs of a program of ``copies`` runs (linear in the
        runs: vectorised copies usually cost less, so this errs on the long side)."""
        scale = (copies or self.copies) / self.copies
        return self.seconds_per_epoch * epochs * scale


def measure(session, steps: int = PROBE_STEPS) -> Probe:
    """Compile ``session`` and train it for about ``steps`` steps (whole log windows, at most
    the run's epochs)."""
    compile_seconds = session.compile()
    epochs_cap = session.configs[0].train.epochs
    steps_per_epoch = session.sources[0].steps_per_epoch
    if steps_per_epoch > session.engine.steps_per_call:  # a long epoch (a large file): time its first steps
        return _measure_steps(session, compile_seconds, steps_per_epoch)
    window = session.log_every
    windows = max(1, math.ceil(steps / max(1, window * steps_per_epoch)))
    # a first window warms up (first calls, the batch thread); the windows after it are timed,
    # as many as make about PROBE_SECONDS by the warm-up's pace (at least ``steps`` steps)
    warm = min(epochs_cap, window)
    started = time.perf_counter()
    fit(session.engine, session.sources, FitPlan(epochs=warm, log_every=window), session.validation)
    windows = max(windows, math.ceil(PROBE_SECONDS / max(time.perf_counter() - started, 1e-3)))
    epochs = min(epochs_cap, warm + window * windows) - warm
    if epochs <= 0:  # the whole run is one window: time that one again
        warm, epochs = 0, warm
    plan = FitPlan(epochs=warm + epochs, log_every=window, start_epoch=warm)
    started = time.perf_counter()
    fit(session.engine, session.sources, plan, session.validation)
    return Probe(compile_seconds, epochs, time.perf_counter() - started, session.runs)


def _measure_steps(session, compile_seconds: float, steps_per_epoch: int) -> Probe:
    """The probe of a program whose epoch takes several compiled calls: a first chunk of steps
    warms up, the chunks after it are timed for about PROBE_SECONDS; the epoch's time is scaled
    from theirs (validation, at most once an epoch, is not included)."""
    started = [0.0]

    def chunks_for(seconds: float):
        calls = [0]

        def stop() -> bool:
            calls[0] += 1
            return calls[0] > 1 and time.perf_counter() - started[0] >= seconds

        return stop

    plan = FitPlan(epochs=1, log_every=1)
    copies = session.engine.program.copies  # engine copies (a k-fold ensemble's members too)
    warm = [CopyProgress() for _ in range(copies)]
    started[0] = time.perf_counter()
    fit(session.engine, session.sources, plan, None, FitCallbacks(should_stop=chunks_for(0.0)), warm)
    timed = [CopyProgress() for _ in range(copies)]
    started[0] = time.perf_counter()
    results = fit(
        session.engine, session.sources, plan, None, FitCallbacks(should_stop=chunks_for(PROBE_SECONDS)), timed
    )
    seconds = time.perf_counter() - started[0]
    steps = results[0].epochs_run * steps_per_epoch + timed[0].partial_steps
    return Probe(compile_seconds, steps / steps_per_epoch, seconds, session.runs)
