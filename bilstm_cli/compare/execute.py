"""Running a comparison's jobs: training one job's repeats, and the local executor.

An executor takes the planned jobs and hands every finished run's record to ``on_result`` as
soon as it exists; only the driver (the caller of ``on_result``) writes files, so workers
need no shared filesystem. The local executor runs jobs in this process, or in worker
processes when ``workers > 1``.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable

import numpy as np

from .. import backend
from ..config.schema import Config
from ..data.prepare import TrainingData
from ..engine.session import TrainingSession
from .plan import Job, repeat_seeds

OnResult = Callable[[dict], None]


def run_job(
    config: Config,
    job: Job,
    on_result: OnResult,
    should_stop: Callable[[], bool],
    threads: int | None = None,
    data: TrainingData | None = None,
) -> None:
    """Train every repeat of one job's variant with one compiled engine; report each result.

    ``config`` is the comparison's config (the job's variant is applied here); ``data`` is the
    prepared training data when the caller has it (worker processes prepare their own).
    """
    from ..data.prepare import prepare_training_data
    from ..device import select_device

    backend.select(config.train.backend)  # worker processes: before anything imports Keras
    device = select_device(config.train.device, threads=threads)
    seeds = repeat_seeds(config)
    settings = job.variant.apply(config)
    if data is None:
        data = prepare_training_data(settings.data, seeds[0], settings.train.class_weight)
    session = TrainingSession(settings, data, device, seeds[job.repeats[0]])
    if session.trains_repeats_together and len(job.repeats) > 1:
        _run_repeats_together(session, job, seeds, on_result, should_stop)
        return
    session.compile()
    for repeat in job.repeats:
        if should_stop():
            return
        session.restart(seeds[repeat])
        started = time.perf_counter()
        result = session.fit(_ignore, _ignore, _ignore, should_stop)
        if result.stopped == "interrupted":
            return
        on_result(_record(job, repeat, seeds[repeat], session.source, session, result, time.perf_counter() - started))


def _run_repeats_together(session: TrainingSession, job: Job, seeds: list[int], on_result, should_stop) -> None:
    """All of a job's repeats as one vectorised program (one compile, the hardware filled)."""
    job_seeds = [seeds[repeat] for repeat in job.repeats]
    started = time.perf_counter()
    results = session.fit_repeats(job_seeds, should_stop)
    seconds = (time.perf_counter() - started) / len(job.repeats)  # each repeat's share of the wall time
    if any(result.stopped == "interrupted" for result in results):
        return
    for repeat, seed, result in zip(job.repeats, job_seeds, results):
        source = session.data.source(session.config.train.batch_size, seed)
        on_result(_record(job, repeat, seed, source, session, result, seconds))


def _record(job: Job, repeat: int, seed: int, source, session: TrainingSession, result, seconds: float) -> dict:
    """What the driver stores for one finished run."""
    return {
        "variant": job.variant.name,
        "repeat": repeat,
        "seed": seed,
        "data_fingerprint": _fingerprint(source, session.validation),
        "history": result.history.to_dict(),
        "seconds": seconds,
    }


def _ignore(*args) -> None:
    """Compare reports whole runs, not epochs or checkpoints."""


def _fingerprint(source, validation) -> str:
    """Digest of the first epoch's training batches and the validation set (pairing check)."""
    digest = hashlib.sha1()
    for array in source.batches(0, 1).arrays():
        digest.update(np.ascontiguousarray(array).tobytes())
    if validation is not None:
        digest.update(validation.x.tobytes())
    return digest.hexdigest()[:16]


class LocalExecutor:
    """Jobs in this process (one worker) or in ``workers`` spawned processes.

    Args:
        config: the comparison's config.
        workers: processes; 1 runs everything here.
        data: the prepared training data (used in-process; workers prepare their own).
    """

    def __init__(self, config: Config, workers: int, data: TrainingData | None = None):
        self.config = config
        self.workers = workers
        self.data = data

    def run(self, jobs: list[Job], on_result: OnResult, should_stop: Callable[[], bool]) -> None:
        if self.workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                run_job(self.config, job, on_result, should_stop, data=self.data)
        else:
            self._run_in_processes(jobs, on_result, should_stop)

    def _run_in_processes(self, jobs: list[Job], on_result: OnResult, should_stop: Callable[[], bool]) -> None:
        import multiprocessing
        import queue as queue_module
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        context = multiprocessing.get_context("spawn")
        manager = context.Manager()
        results, stop_event = manager.Queue(), manager.Event()
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        config_json = self.config.model_dump_json()

        def drain() -> None:
            while True:
                try:
                    on_result(results.get_nowait())
                except queue_module.Empty:
                    return

        try:
            with ProcessPoolExecutor(max_workers=self.workers, mp_context=context) as pool:
                pending = {pool.submit(_worker, config_json, job, results, stop_event, threads) for job in jobs}
                while pending:
                    finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    drain()
                    for future in finished:
                        future.result()  # re-raise a worker's error here
                    if should_stop():
                        stop_event.set()
                drain()
        finally:
            manager.shutdown()


def _worker(config_json: str, job: Job, queue, stop_event, threads: int) -> None:
    """Process entry point for ``workers > 1`` (spawned: the backend is imported fresh)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    config = Config.model_validate_json(config_json)
    run_job(config, job, queue.put, stop_event.is_set, threads)
