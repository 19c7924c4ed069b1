"""Trials in worker processes (``--workers N``): the driver keeps the study, workers only train.

A worker trains one trial at a time (:func:`~bilstm_cli.tune.trial.train_trial`) and sends each
logged validation score to the driver through a queue; the driver reports it to the study,
asks the pruner and, to prune, sets a flag the worker reads at its next logged epoch (one
logged epoch later than in-process pruning). Workers never touch the study or the files.
"""

from __future__ import annotations

import queue as queue_module
from collections.abc import Callable

from ..config.schema import Config
from ..cores import CoreShares
from .trial import TrialOutcome, quiet_retracing, train_trial

OnReport = Callable[[int, float, int], bool]  # (trial number, score, epoch) -> prune?


class TrialPool:
    """``workers`` spawned processes training trials; see the module's docstring."""

    def __init__(self, workers: int, files):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        self.workers = workers
        self._files = files
        self._manager = context.Manager()
        self._queue = self._manager.Queue()
        self._prune = self._manager.dict()
        self._stop = self._manager.Event()
        shares = CoreShares(context, workers)  # each worker keeps to its own cores
        self._threads = shares.threads
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=shares.take)

    def submit(self, number: int, settings: Config, seed: int, metric: str):
        """Start training one trial; returns its future (a :class:`TrialOutcome`)."""
        return self._pool.submit(
            _worker,
            number,
            settings.model_dump_json(),
            seed,
            metric,
            self._files,
            self._queue,
            self._prune,
            self._stop,
            self._threads,
        )

    def wait(self, futures, seconds: float = 0.2):
        """The futures among ``futures`` that are done (waiting up to ``seconds``)."""
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(futures, timeout=seconds, return_when=FIRST_COMPLETED)
        return done

    def drain(self, on_report: OnReport) -> None:
        """Hand every score the workers sent to ``on_report``; flag the trials to prune."""
        while True:
            try:
                number, value, epoch = self._queue.get_nowait()
            except queue_module.Empty:
                return
            if on_report(number, value, epoch):
                self._prune[number] = True

    def stop(self) -> None:
        """Ask every running trial to stop at its next chunk (it ends ``interrupted``)."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._manager.shutdown()


_prepared: dict = {}  # a worker keeps the data it prepared for earlier trials


def _worker(number, settings_json, seed, metric, files, queue, prune, stop, threads) -> TrialOutcome:
    """Process entry point (spawned: the backend is imported fresh)."""
    import signal

    from .. import backend

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides when to stop
    quiet_retracing()
    settings = Config.model_validate_json(settings_json)
    backend.select(settings.train.backend)
    from ..device import select_device

    device = select_device(settings.train.device, threads=threads)

    def report(value: float, epoch: int) -> bool:
        queue.put((number, value, epoch))
        return bool(prune.get(number, False))

    return train_trial(settings, seed, device, files, _prepared, metric, report, stop.is_set)
