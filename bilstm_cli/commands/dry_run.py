"""``train --dry-run`` and ``compare --dry-run``: the resolved plan and an estimated time from a
short measured probe (compile one program, train it briefly); nothing is written.

The probe trains the first program (``compare``: its first job, all of its runs at once) from
its initial weights for about :data:`~bilstm_cli.engine.probe.PROBE_STEPS` steps, validation at
the run's log interval included, and scales that to the planned epochs and runs.
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..compare.execute import job_data, worker_count
from ..compare.plan import check_file_names, plan_jobs, repeat_seeds, run_config
from ..config.schema import Config, DatasetSpec
from ..config.variants import Variant
from ..data import stdin_data
from ..data.prepare import prepare_training_data, read_files
from ..device import select_device
from ..engine.probe import measure
from ..engine.session import TrainingSession
from ..runs import directory
from ..seeds import draw_seed


def run_dry_run(
    config: Config,
    variants: list[Variant] | None = None,
    datasets: list[DatasetSpec] | None = None,
    out: str | None = None,
) -> dict[str, Any]:
    """The plan of ``bilstm train`` (``variants`` None) or ``bilstm compare``, with a probe's
    timings and the estimated seconds (start-up and writing files not included)."""
    backend.select(config.train.backend)
    stdin_data.require_data(config.data)
    seeded = config.model_copy(deep=True)
    if seeded.train.seed is None:  # the real run draws its own; the probe needs one
        seeded.train.seed = draw_seed()
    if variants is None:
        return _train_plan(config, seeded, out)
    return _compare_plan(config, seeded, variants, datasets or [], out)


def _train_plan(config: Config, seeded: Config, out: str | None) -> dict[str, Any]:
    seed = seeded.train.seed
    data = prepare_training_data(
        seeded.data, seed, seeded.train.class_weight, files=read_files(seeded.data), folds=seeded.train.folds
    )
    session = TrainingSession([seeded], [seed], data, select_device(seeded.train.device))
    probe = measure(session)
    epochs = config.train.epochs
    return {
        "command": "train",
        "out": str(directory.run_directory(config.output, session.variant(), out)),
        "variants": [session.variant()],
        "datasets": [_data_name(config)],
        "runs": 1,
        "programs": 1,
        **_setting(session, config),
        **_estimate(probe, probe.compile_seconds, probe.training_seconds(epochs), 1),
        "config": config.to_yaml(),
    }


def _compare_plan(
    config: Config, seeded: Config, variants: list[Variant], datasets: list[DatasetSpec], out: str | None
) -> dict[str, Any]:
    check_file_names(datasets, variants)
    run_configs = {(d.name, v.name): run_config(seeded, d, v) for d in datasets for v in variants}
    repeats = config.compare.repeats
    jobs = plan_jobs(run_configs, datasets, variants, repeats, config.compare.runs_per_program)
    seeds = repeat_seeds(seeded)
    # a process compiles once per structure (see run_job): dataset, variants and their numbers of runs
    structures = {(job.dataset.name, tuple((p.variant.name, len(p.repeats)) for p in job.parts)) for job in jobs}
    first = jobs[0]
    configs = [run_configs[(first.dataset.name, part.variant.name)] for part in first.parts for _ in part.repeats]
    run_seeds = [seeds[repeat] for part in first.parts for repeat in part.repeats]
    files = read_files(configs[0].data)
    data = job_data(first.dataset.name, configs[0], seeds[0], files, {})
    session = TrainingSession(configs, run_seeds, data, select_device(seeded.train.device))
    probe = measure(session)
    training = sum(
        probe.training_seconds(
            max(run_configs[(job.dataset.name, p.variant.name)].train.epochs for p in job.parts), job.runs
        )
        for job in jobs
    )
    workers = 1 if config.compare.executor == "ray" else worker_count(config.compare.workers, len(jobs))
    # each worker process compiles its own programs; on the CPU, workers split its cores (the
    # probe used them all), so only GPUs are counted as running in parallel
    compiles = len(structures) if workers == 1 else max(len(structures), min(workers, len(jobs)))
    parallel = workers if session.device.kind == "gpu" else 1
    return {
        "command": "compare",
        "out": str(directory.run_directory(config.output, "compare", out)),
        "variants": [v.name for v in variants],
        "datasets": [d.name for d in datasets],
        "repeats": repeats,
        "runs": len(datasets) * len(variants) * repeats,
        "jobs": len(jobs),
        "programs": len(structures),
        "workers": workers,
        "executor": config.compare.executor,
        **_setting(session, config),
        **_estimate(probe, probe.compile_seconds * compiles, training, parallel),
        "config": config.to_yaml(),
    }


def _setting(session: TrainingSession, config: Config) -> dict[str, Any]:
    return {
        "backend": backend.name(),
        "device": session.device.description,
        "xla": session.jit_compile,
        "seed": config.train.seed,  # None: drawn when the real run starts
        "epochs": config.train.epochs,
        "early_stopping": config.train.early_stopping.enabled,
        "folds": session.members if session.members > 1 else 0,  # a k-fold ensemble's members per run
        "steps_per_epoch": session.sources[0].steps_per_epoch,
        "batch_size": session.batch_shape[0],
        "log_every": session.log_every,
    }


def _estimate(probe, compile_seconds: float, training_seconds: float, workers: int) -> dict[str, Any]:
    return {
        "probe": {
            "compile_seconds": probe.compile_seconds,
            "epochs": probe.epochs,
            "seconds": probe.seconds,
            "runs": probe.copies,
        },
        "estimate_seconds": (compile_seconds + training_seconds) / max(1, workers),
    }


def _data_name(config: Config) -> str:
    path = config.data.train_path
    return "generated" if path is None else ("stdin" if path == "-" else path)


def run_tune_dry_run(config: Config, dimensions: list, out: str | None = None) -> dict[str, Any]:
    """The plan of ``bilstm tune``: the search's budget and the confirmation's runs, timed from a
    probe of the starting config (each trial's size differs; pruned trials stop sooner)."""
    from ..tune.study import parse_duration, trials_budget

    plan = run_dry_run(config, out=out)
    one_run = plan["estimate_seconds"]
    tune = config.tune
    trials = trials_budget(tune, dimensions)
    timeout = parse_duration(tune.timeout)
    search = [s for s in (None if trials is None else trials * one_run / tune.workers, timeout) if s is not None]
    confirm_runs = (tune.top_k + 1) * tune.confirm_repeats
    # the confirmation is a comparison: programs of many runs, one compile each, over two workers
    compile_seconds = plan["probe"]["compile_seconds"]
    confirm = compile_seconds + confirm_runs * (one_run - compile_seconds) / 2 if confirm_runs else 0.0
    plan.update(
        command="tune",
        estimate_seconds_one_run=one_run,
        space=[f"{dimension.key}: {dimension.spec()}" for dimension in dimensions],
        trials=trials,
        timeout_seconds=timeout,
        sampler=tune.sampler,
        pruner=tune.pruner,
        confirm_runs=confirm_runs,
        search_seconds=min(search),
        confirm_seconds=confirm,
        estimate_seconds=min(search) + confirm + one_run,  # and the winner's run on all the data
    )
    return plan
