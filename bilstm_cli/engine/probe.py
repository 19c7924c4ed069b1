"""A short measured probe of a session's program, for ``--dry-run``'s time estimate: compile it,
train a few log windows from the initial weights, and scale that to the whole run. Nothing is
saved; the session can be thrown away afterwards."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from .loop import FitPlan, fit

PROBE_STEPS = 50  # optimizer steps the probe trains at least (one log window at least)
PROBE_SECONDS = 1.0  # and about this long


@dataclass
class Probe:
    compile_seconds: float
    epochs: int  # epochs the probe trained
    seconds: float  # their wall time, validation at the run's log interval included
    copies: int  # runs trained together in the probed program

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / max(1, self.epochs)

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
    return Probe(compile_seconds, epochs, time.perf_counter() - started, session.copies)
