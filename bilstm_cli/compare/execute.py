"""Running a comparison's jobs: training one job's runs, and the local executor.

An executor takes the planned jobs and hands every finished run's record to ``on_result`` as
soon as it exists; only the driver (the caller of ``on_result``) writes files, so workers
need no shared filesystem. The local executor runs jobs in this process, or in worker
processes when ``workers > 1``; :mod:`bilstm_cli.compare.ray_executor` runs them on a Ray cluster.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

from .. import backend
from ..config.schema import Config
from ..data.prepare import DataFiles, TrainingData
from ..engine.loop import FitResult
from ..engine.session import TrainingSession
from ..fileio.digest import fingerprint
from .plan import Job, Part, dataset_config, repeat_seeds

OnResult = Callable[[dict], None]
ShouldStop = Callable[[], bool]


def run_job(
    config: Config,
    job: Job,
    on_result: OnResult,
    should_stop: ShouldStop,
    threads: int | None = None,
    files: DataFiles | None = None,
    prepared: dict[str, TrainingData] | None = None,
) -> None:
    """Train every run of one job with one compiled engine and report each finished run.

    Args:
        config: the comparison's config (the job's dataset and variants are applied here).
        job: the dataset and the parts (variant + repeats) to train, in order.
        on_result: receives each run's record (see :func:`run_record`).
        should_stop: polled between chunks; True ends the job early (finished runs are kept).
        threads: CPU threads for this process (worker processes share the cores).
        files: the dataset's files, already read by the driver (workers need no filesystem).
        prepared: training data prepared by earlier jobs of this process, by data settings.
    """
    from ..device import select_device

    backend.select(config.train.backend)  # worker processes: before anything imports Keras
    device = select_device(config.train.device, threads=threads)
    seeds = repeat_seeds(config)
    base = dataset_config(config, job.dataset)
    first = job.parts[0].variant.apply(base)
    data = job_data(job.dataset.name, first, seeds[0], files, prepared if prepared is not None else {})
    session = TrainingSession(first, data, device, seeds[job.parts[0].repeats[0]])
    compiled = False
    for part in job.parts:
        session.retarget(part.variant.apply(base))
        together = session.trains_repeats_together and len(part.repeats) > 1
        if together and not session.config.train.early_stopping.enabled:
            _run_together(session, job, part, seeds, on_result, should_stop)
        else:
            if not compiled:
                session.compile()
                compiled = True
            _run_one_by_one(session, job, part, seeds, on_result, should_stop)
        if should_stop():
            return


def job_data(
    dataset: str, settings: Config, seed: int, files: DataFiles | None, prepared: dict[str, TrainingData]
) -> TrainingData:
    """The training data of a job (prepared once per dataset and data settings, kept in ``prepared``).

    ``seed`` is the first repeat's (it picks a validation split, shared by all repeats). The
    driver prepares each dataset before anything is written, to fail early on bad data;
    in-process jobs then reuse that work instead of doing it again.
    """
    from ..data.prepare import prepare_training_data

    key = f"{dataset}:{seed}:{settings.data.model_dump_json()}:{settings.train.class_weight}"
    if key not in prepared:
        prepared[key] = prepare_training_data(settings.data, seed, settings.train.class_weight, files)
    return prepared[key]


def _run_one_by_one(session: TrainingSession, job: Job, part: Part, seeds, on_result, should_stop) -> None:
    for repeat in part.repeats:
        if should_stop():
            return
        session.restart(seeds[repeat])
        started = time.perf_counter()
        result = session.fit(_ignore, _ignore, _ignore, should_stop)
        if result.stopped == "interrupted":
            return
        test = session.test_scores()
        seconds = time.perf_counter() - started
        on_result(run_record(job, part, repeat, seeds[repeat], session.source, session, result, test, seconds))


def _run_together(session: TrainingSession, job: Job, part: Part, seeds, on_result, should_stop) -> None:
    """All of a part's repeats as one vectorised program (one compile, the hardware filled)."""
    part_seeds = [seeds[repeat] for repeat in part.repeats]
    started = time.perf_counter()
    results, tests = session.fit_repeats(part_seeds, should_stop)
    seconds = (time.perf_counter() - started) / len(part.repeats)  # each repeat's share of the wall time
    if any(result.stopped == "interrupted" for result in results):
        return
    for index, (repeat, seed, result) in enumerate(zip(part.repeats, part_seeds, results)):
        source = session.data.source(session.config.train.batch_size, seed)
        test = tests[index] if tests is not None else None
        on_result(run_record(job, part, repeat, seed, source, session, result, test, seconds))


def _ignore(*args) -> None:
    """Compare reports whole runs, not epochs or checkpoints."""


def run_record(
    job: Job, part: Part, repeat: int, seed: int, source, session: TrainingSession, result: FitResult, test, seconds
) -> dict:
    """What the driver stores for one finished run (``results/<dataset>/<variant>__repeat-NNN.json``)."""
    return {
        "dataset": job.dataset.name,
        "variant": part.variant.name,
        "repeat": repeat,
        "seed": seed,
        "data_fingerprint": _fingerprint(source, session.validation),
        "history": result.history.to_dict(),
        "epochs_run": result.epochs_run,
        "stopped": result.stopped,
        "best_epoch": result.best_epoch,
        "final": final_scores(result, test),
        "seconds": seconds,
        "worker": {"pid": os.getpid(), "versions": worker_versions()},
    }


def final_scores(result: FitResult, test: tuple[float, float] | None) -> dict:
    """The scores a run is judged by: on the test set when there is one, else the validation
    scores of the weights the run ended with (the best epoch's, with early stopping)."""
    if test is not None:
        return {"split": "test", "loss": test[0], "accuracy": test[1]}
    history = result.history
    logged = history.logged()
    if not logged:
        return {"split": "validation", "loss": None, "accuracy": None}
    index = logged[-1]
    if result.best_epoch is not None:  # early stopping kept the best epoch's weights
        index = history.epoch.index(result.best_epoch)
    loss, accuracy = history.val_loss[index], history.val_accuracy[index]
    return {"split": "validation", "loss": None if math.isnan(loss) else loss, "accuracy": accuracy}


def worker_versions() -> dict[str, str]:
    """Versions a run was computed with; the driver checks that every worker matches it."""
    return {"backend": backend.name(), **backend.versions()}


def _fingerprint(source, validation) -> str:
    """Digest of the first epoch's training batches and the validation set (pairing check)."""
    parts = list(source.batches(0, 1).arrays()) + ([validation.x] if validation is not None else [])
    return fingerprint(parts)[:16]


class LocalExecutor:
    """Jobs in this process (one worker) or in ``workers`` spawned processes.

    Args:
        config: the comparison's config.
        workers: processes; 1 runs everything here.
        files: each dataset's files, read once by the driver (by dataset name).
        prepared: training data the driver prepared already (see :func:`job_data`).
    """

    def __init__(
        self,
        config: Config,
        workers: int,
        files: dict[str, DataFiles | None],
        prepared: dict[str, TrainingData] | None = None,
    ):
        self.config = config
        self.workers = workers
        self.files = files
        self._prepared = prepared if prepared is not None else {}

    def run(self, jobs: list[Job], on_result: OnResult, should_stop: ShouldStop) -> None:
        if self.workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                files = self.files.get(job.dataset.name)
                run_job(self.config, job, on_result, should_stop, files=files, prepared=self._prepared)
                if should_stop():
                    return
        else:
            self._run_in_processes(jobs, on_result, should_stop)

    def _run_in_processes(self, jobs: list[Job], on_result: OnResult, should_stop: ShouldStop) -> None:
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
                pending = {
                    pool.submit(
                        _worker, config_json, job, self.files.get(job.dataset.name), results, stop_event, threads
                    )
                    for job in jobs
                }
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


def _worker(config_json: str, job: Job, files: DataFiles | None, queue, stop_event, threads: int) -> None:
    """Process entry point for ``workers > 1`` (spawned: the backend is imported fresh)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    config = Config.model_validate_json(config_json)
    run_job(config, job, queue.put, stop_event.is_set, threads, files)
