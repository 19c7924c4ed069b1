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
from typing import TYPE_CHECKING

from .. import backend
from ..config.refit import refit_applies, refit_config, refit_epochs
from ..config.schema import Config
from ..cores import CoreShares, current_cores, usable_cores
from ..data.prepare import DataFiles, TrainingData
from ..fileio.digest import fingerprint
from .plan import Job, Part, dataset_config, repeat_seeds

if TYPE_CHECKING:  # the engine (and Keras) load only where runs train: a driver with worker
    # processes never imports them (a smaller process tree, and workers start sooner)
    from ..engine.loop import FitResult
    from ..engine.session import TrainingSession

OnResult = Callable[[dict], None]
SAVED_MODEL = "saved_model"  # a record's model, when compare.save_models keeps it (not in results/)
ShouldStop = Callable[[], bool]


def run_job(
    config: Config,
    job: Job,
    on_result: OnResult,
    should_stop: ShouldStop,
    threads: int | None = None,
    files: DataFiles | None = None,
    prepared: dict[str, TrainingData] | None = None,
    sessions: dict | None = None,
) -> None:
    """Train every run of one job as one program and report each finished run.

    Args:
        config: the comparison's config (the job's dataset and variants are applied here).
        job: the dataset and the parts (variant + repeats) to train, in copy order.
        on_result: receives each run's record (see :func:`run_record`) when the program ends.
        should_stop: polled between chunks; True ends the job without results (its runs are
            trained again, whole, on resume).
        threads: CPU threads for this process (worker processes share the cores).
        files: the dataset's files, already read by the driver (workers need no filesystem).
        prepared: training data prepared by earlier jobs of this process, by data settings.
        sessions: sessions of earlier jobs of this process, by structure: a job of the same
            structure reuses one (its compiled program) with new seeds and learning rates.
    """
    backend.select(config.train.backend)  # worker processes: before anything imports Keras
    from ..device import select_device
    from ..engine.loop import FitCallbacks
    from ..engine.session import TrainingSession

    device = select_device(config.train.device, threads=threads)
    seeds = repeat_seeds(config)
    base = dataset_config(config, job.dataset)
    configs = [part.variant.apply(base) for part in job.parts for _ in part.repeats]
    run_seeds = [seeds[repeat] for part in job.parts for repeat in part.repeats]
    data = job_data(job.dataset.name, configs[0], seeds[0], files, prepared if prepared is not None else {})
    sessions = sessions if sessions is not None else {}
    key = (job.dataset.name, tuple((part.variant.name, len(part.repeats)) for part in job.parts), len(set(run_seeds)))
    started = time.perf_counter()
    session = sessions.get(key)
    compile_seconds = 0.0  # a reused session compiled for an earlier job
    if session is None:
        session = sessions[key] = TrainingSession(configs, run_seeds, data, device)
        compile_seconds = session.compile()
    else:
        session.restart(configs, run_seeds)
    results = session.fit(FitCallbacks(should_stop=should_stop))
    if any(result.stopped == "interrupted" for result in results):
        return
    refits, scoring = [None] * len(results), session  # the test set scores the refit's models
    if refit_applies(configs[0]):
        scoring, refits = _refit(configs, run_seeds, results, job, seeds, files, prepared, device, should_stop)
        if scoring is None:  # interrupted
            return
    tests = scoring.test_scores()
    seconds = (time.perf_counter() - started) / len(results)  # each run's share of the wall time
    keep = config.compare.save_models != "none"
    ensembles = session.members > 1
    validation = member_scores = None
    if keep or ensembles:  # one evaluation for every run (and an ensemble's members)
        validation, member_scores = session.all_validation_scores() or (None, None)
    scores = (validation, tests, member_scores) if keep else None  # once for all the kept models
    copy = 0
    for part in job.parts:
        for repeat in part.repeats:
            test = None if tests is None else (float(tests[copy, 0]), float(tests[copy, 1]))
            # an ensemble's validation score: its members' on their own folds (out of fold)
            pooled = validation[copy] if ensembles and validation is not None else None
            record = run_record(job, part, repeat, seeds[repeat], session, copy, results[copy], test, seconds, pooled)
            if ensembles:
                record["folds"] = session.fold_summary(copy, member_scores)
            if keep:  # the driver writes it (see compare/saved_models.py)
                record[SAVED_MODEL] = saved_model(
                    scoring, copy, seeds[repeat], results[copy], compile_seconds, seconds, scores
                )
            if refits[copy] is not None:
                record["refit"] = refits[copy]
            on_result(record)
            copy += 1


def _refit(configs, run_seeds, results, job, seeds, files, prepared, device, should_stop):
    """Every run trained again on all training sequences for its own chosen epochs (as
    ``bilstm train`` does, see :mod:`bilstm_cli.config.refit`), as one program: (the refit's
    session, each run's refit record), or (None, None) when interrupted."""
    chosen = [refit_epochs(config, result.best_epoch, result.epochs_run) for config, result in zip(configs, results)]
    refit_configs = [refit_config(config, max(chosen)) for config in configs]
    data = job_data(job.dataset.name, refit_configs[0], seeds[0], files, prepared if prepared is not None else {})
    from ..engine.loop import FitCallbacks
    from ..engine.session import TrainingSession

    session = TrainingSession(refit_configs, run_seeds, data, device)
    session.compile()
    refitted = session.fit(FitCallbacks(should_stop=should_stop), copy_epochs=chosen)
    if any(result.stopped == "interrupted" for result in refitted):
        return None, None
    sequences = data.train_size
    return session, [{"epochs": epochs, "sequences": sequences} for epochs in chosen]


def job_data(
    dataset: str, settings: Config, seed: int, files: DataFiles | None, prepared: dict[str, TrainingData]
) -> TrainingData:
    """The training data of a job (prepared once per dataset and data settings, kept in ``prepared``).

    ``seed`` is the first repeat's (it picks a validation split, shared by all repeats). The
    driver prepares each dataset before anything is written, to fail early on bad data;
    in-process jobs then reuse that work instead of doing it again.
    """
    from ..data.prepare import prepare_training_data

    train = settings.train
    key = f"{dataset}:{seed}:{settings.data.model_dump_json()}:{train.class_weight}:{train.folds}"
    if key not in prepared:
        if files is not None:
            files.check_readable()  # a streamed file is read from its path, here too
        prepared[key] = prepare_training_data(settings.data, seed, train.class_weight, files, train.folds)
    return prepared[key]


def run_record(
    job: Job,
    part: Part,
    repeat: int,
    seed: int,
    session: TrainingSession,
    copy: int,
    result: FitResult,
    test,
    seconds,
    validation=None,
) -> dict:
    """What the driver stores for one finished run (``results/<dataset>/<variant>__repeat-NNN.json``)."""
    return {
        "dataset": job.dataset.name,
        "variant": part.variant.name,
        "repeat": repeat,
        "seed": seed,
        "data_fingerprint": _fingerprint(session.source(copy), session.validation),
        "history": result.history.to_dict(),
        "epochs_run": result.epochs_run,
        "stopped": result.stopped,
        "best_epoch": result.best_epoch,
        "final": final_scores(result, test, validation),
        "seconds": seconds,
        "worker": {"pid": os.getpid(), "cores": current_cores(), "versions": worker_versions()},
    }


def saved_model(
    session: TrainingSession,
    copy: int,
    seed: int,
    result: FitResult,
    compile_seconds: float,
    seconds: float,
    scores: tuple | None = None,
) -> dict:
    """What the driver needs to write run ``copy`` as a train run directory: the model file's
    bytes (workers need no shared filesystem), the run's config with its seed, the data
    description and the metrics ``bilstm train`` would record."""
    import tempfile
    from pathlib import Path

    config = session.configs[copy].model_copy(deep=True)
    config.train.seed = seed
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        session.model_to_save(copy).save(path)
        model = path.read_bytes()
    return {
        "model": model,
        "config": config.to_yaml(),
        "data": session.data.describe(),
        "metrics": session.metrics(result, compile_seconds, seconds, copy, scores),
    }


def final_scores(result: FitResult, test: tuple[float, float] | None, validation=None) -> dict:
    """The scores a run is judged by: on the test set when there is one, else the validation
    scores of the weights the run ended with (the best epoch's, with early stopping; a k-fold
    ensemble's: ``validation``, its members' pooled out-of-fold scores)."""
    if test is not None:
        return {"split": "test", "loss": test[0], "accuracy": test[1]}
    if validation is not None:
        return {"split": "validation", "loss": float(validation[0]), "accuracy": float(validation[1])}
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
    # the first steps (a streamed file's epoch may not fit in memory) and validation's first part
    first = source.step_batches(0, 0, min(source.steps_per_epoch, 64))
    parts = list(first.arrays()) + ([next(iter(validation.parts())).x] if validation is not None else [])
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
        self.setting = workers
        self.files = files
        self._prepared = prepared if prepared is not None else {}
        self._sessions: dict = {}

    def workers(self, jobs: int) -> int:
        """Processes for ``jobs`` jobs: the setting, or ``auto``: one per core, at most one per job."""
        return worker_count(self.setting, jobs)

    def run(self, jobs: list[Job], on_result: OnResult, should_stop: ShouldStop) -> None:
        workers = self.workers(len(jobs))
        if workers <= 1:
            for job in jobs:
                files = self.files.get(job.dataset.name)
                run_job(self.config, job, on_result, should_stop, None, files, self._prepared, self._sessions)
                if should_stop():
                    return
        else:
            self._run_in_processes(jobs, workers, on_result, should_stop)

    def _run_in_processes(self, jobs: list[Job], workers: int, on_result: OnResult, should_stop: ShouldStop) -> None:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        context = multiprocessing.get_context("spawn")
        # a job's records come back as its future's result (they all exist when its program
        # ends); only the stop request needs sharing, and an Event needs no extra process
        stop_event = context.Event()
        workers = min(workers, len(jobs))  # no more processes than jobs (the pool starts no more)
        shares = CoreShares(context, workers)  # each worker keeps to its own cores
        config_json = self.config.model_dump_json()
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_start_worker, initargs=(stop_event, shares)
        )
        finished_all = False
        try:
            pending = {
                pool.submit(_worker, config_json, job, self.files.get(job.dataset.name), shares.threads) for job in jobs
            }
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in finished:
                    for record in future.result():  # re-raises a worker's error here
                        on_result(record)
                if should_stop():
                    stop_event.set()
            finished_all = True
        finally:
            # every record is in: the driver writes its outputs while the workers exit (~0.7 s
            # of backend teardown); Python waits for them before this process ends. On an error
            # the running jobs are told to stop first, so the error shows without waiting for them
            if not finished_all:
                stop_event.set()
            pool.shutdown(wait=not finished_all, cancel_futures=not finished_all)


def worker_count(setting: int | str, jobs: int) -> int:
    """``compare.workers``: a number, or ``auto``: one process per usable CPU core, at most one per job."""
    if setting == "auto":
        return max(1, min(usable_cores(), jobs))
    return int(setting)


# A worker process keeps what earlier jobs prepared: the data, and sessions (compiled programs).
_worker_prepared: dict = {}
_worker_sessions: dict = {}
_worker_stop = None  # the driver's stop request (a multiprocessing Event), set by _start_worker


def _start_worker(stop_event, shares: CoreShares) -> None:
    """Worker process initializer (spawned: the backend is imported fresh, by the first job)."""
    import signal

    global _worker_stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    _worker_stop = stop_event
    shares.take()  # before the backend starts: it sizes its thread pools by these cores


def _worker(config_json: str, job: Job, files: DataFiles | None, threads: int) -> list[dict]:
    """Process entry point for ``workers > 1``: the job's records (none if it was stopped)."""
    config = Config.model_validate_json(config_json)
    records: list[dict] = []
    run_job(config, job, records.append, _worker_stop.is_set, threads, files, _worker_prepared, _worker_sessions)
    return records
