"""``bilstm compare``: train (dataset x variant x paired repeat) runs, then summarise with statistics.

Finished runs are written by this process (the driver) as they arrive, so an interrupted
comparison keeps them and ``--resume`` only runs what is missing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import backend
from ..compare.execute import SAVED_MODEL, LocalExecutor, job_data
from ..compare.outputs import write_outputs
from ..compare.plan import (
    CONFIGS,
    RESULTS,
    TENSORBOARD,
    check_file_names,
    dataset_config,
    jobs_to_run,
    missing_runs,
    plan_jobs,
    result_path,
    run_config,
    slug,
)
from ..compare.saved_models import MODELS, keep_model
from ..compare.summary import load_results, summarize
from ..config.schema import Config, DatasetSpec
from ..config.variants import Variant, recorded_variants
from ..data import stdin_data
from ..data.prepare import read_files
from ..errors import Interrupted
from ..fileio import atomic
from ..fileio.files import write_json
from ..report.plots import preload as plots_preload
from ..runs import directory
from ..runs.tensorboard import write_history_events
from ..signals import StopRequest
from ..stats.paired import scipy_stats
from .requests import recordable


@dataclass
class CompareResult:
    out: Path
    summary: dict[str, Any]
    wall_seconds: float
    files: list[str]


@dataclass
class ComparePlan:
    """What a comparison will do, for the reporter to show before it starts."""

    datasets: list[str]
    variants: list[str]
    repeats: int
    total: int
    done: int
    jobs: int
    workers: int
    seeds: tuple[int, int]
    executor: str = "local"


# a run's settings shown in TensorBoard's HParams tab (with its dataset, variant, repeat, seed)
HPARAM_KEYS = (
    "model.kind", "model.cell", "model.direction", "model.merge", "model.units", "model.layers", "model.dropout",
    "model.pooling", "train.optimizer", "train.learning_rate", "train.batch_size", "train.epochs",
)  # fmt: skip


def run_hparams(settings: Config, record: dict) -> dict[str, str | float | bool]:
    """What TensorBoard's HParams tab filters and sorts a comparison's runs by."""
    values: dict[str, str | float | bool] = {
        "dataset": record["dataset"],
        "variant": record["variant"],
        "repeat": record["repeat"],
        "seed": record["seed"],
    }
    for key in HPARAM_KEYS:
        section, name = key.split(".")
        value = getattr(getattr(settings, section), name)
        values[key] = "none" if value is None else value
    return values


def run_compare(
    config: Config,
    variants: list[Variant],
    reporter,
    datasets: list[DatasetSpec],
    out: str | None = None,
    resume: str | None = None,
) -> CompareResult:
    """Run every missing (dataset, variant, repeat), then write the summaries, plots and config.

    Args:
        config: the resolved config (for ``resume``: the saved one, see
            :func:`~bilstm_cli.runs.directory.load_saved_config`).
        variants: the variants to compare (see :func:`~bilstm_cli.config.variants.comparison_variants`).
        reporter: receives the plan and each finished run (the CLI renders them).
        datasets: the datasets to compare on (see :func:`~bilstm_cli.compare.plan.comparison_datasets`).
        out: output directory for a new comparison (default ``output.root/<timestamp>-compare``).
        resume: the directory of an interrupted comparison to finish.

    The output directory is locked from its claim to the end (see :func:`run_train`).
    """
    try:
        return _compare(config, variants, reporter, datasets, out, resume)
    finally:
        directory.release_run_directories()


def _compare(config, variants, reporter, datasets, out, resume) -> CompareResult:
    started = time.perf_counter()
    backend.select(config.train.backend)
    stdin_data.require_data(config.data)  # a config whose data came from stdin would train on the generator
    if resume is None:
        config = recordable(config)
        config.compare.variants = recorded_variants(variants)
        config.compare.grid = {}  # the variants above are the expanded grid
        config.compare.datasets = datasets
    check_file_names(datasets, variants)
    run_configs = {(d.name, v.name): run_config(config, d, v) for d in datasets for v in variants}  # validates all
    # read every file once, and fail on bad data before anything is written
    files = {dataset.name: read_files(dataset_config(config, dataset).data) for dataset in datasets}
    prepared: dict = {}  # kept for the in-process jobs
    for dataset in datasets:
        first = run_configs[(dataset.name, variants[0].name)]
        job_data(dataset.name, first, config.train.seed, files[dataset.name], prepared)
    # Ray is started (or joined) and its resources checked before anything is written
    executor, workers, executor_name = _executor(config, files, prepared, reporter)
    try:
        if resume is None:
            out_dir = directory.prepare_run_directory(
                directory.run_directory(config.output, "compare", out), config.output.overwrite
            )
            directory.save_config(out_dir, config)
            for (dataset, variant), settings in run_configs.items():
                # each run's full config: `bilstm train --config` on it (with the repeat's seed) reruns it
                atomic.write_text(out_dir / CONFIGS / slug(dataset) / f"{slug(variant)}.yaml", settings.to_yaml())
        else:
            out_dir = Path(resume)
            directory.hold_run_directory(out_dir)
        (out_dir / RESULTS).mkdir(exist_ok=True)

        repeats = config.compare.repeats
        missing = missing_runs(out_dir, datasets, variants, repeats)
        total = len(datasets) * len(variants) * repeats
        done = total - sum(len(m) for m in missing.values())
        planned = plan_jobs(run_configs, datasets, variants, repeats, config.compare.runs_per_program)
        jobs = jobs_to_run(planned, missing)
        if isinstance(executor, LocalExecutor):
            workers = executor.workers(len(jobs))
        seed = config.train.seed
        plan = ComparePlan(
            [d.name for d in datasets],
            [v.name for v in variants],
            repeats,
            total,
            done,
            len(jobs),
            workers,
            (seed, seed + repeats - 1),
            executor_name,
        )
        reporter.start(plan)

        def record_result(record: dict) -> None:
            dataset, variant, repeat = record["dataset"], record["variant"], record["repeat"]
            saved = record.pop(SAVED_MODEL, None)
            if saved is not None:
                keep_model(out_dir, record, saved, config.compare.save_models, config.compare.metric)
            path = result_path(out_dir, dataset, variant, repeat)
            if path.exists():  # resume trains a program whole; its finished runs are kept as they were
                return
            write_json(path, record)
            if config.output.tensorboard:  # one TensorBoard run per (dataset, variant, repeat)
                settings = run_configs[(dataset, variant)]
                events = out_dir / TENSORBOARD / slug(dataset) / slug(variant) / f"repeat-{repeat:03d}"
                hparams = run_hparams(settings, record)
                write_history_events(
                    events, record["history"], settings.train.learning_rate, settings.to_yaml(), hparams
                )
            reporter.on_result(record)

        notice = "stopping at the next safe point; finished runs are kept (press again to quit at once)"
        # what the summary needs, imported while the runs train rather than after the last one
        # (not the event writer: its import hides PyTorch in sys.modules for a moment, which
        # must not happen while this process trains)
        threading.Thread(target=_preload, daemon=True).start()
        with StopRequest(notice) as stop:
            executor.run(jobs, record_result, lambda: stop.requested)
    finally:
        reporter.close()
        if not isinstance(executor, LocalExecutor):
            executor.shutdown()  # the private Ray instance stops with the command
    remaining = sum(len(m) for m in missing_runs(out_dir, datasets, variants, repeats).values())
    if remaining:
        raise Interrupted(
            f"stopped with {remaining} of {total} runs missing; finished runs are saved in {out_dir}",
            f"resume with: bilstm compare --resume {out_dir}",
        )
    names = [d.name for d in datasets]
    results = load_results(out_dir, names, [v.name for v in variants], repeats)
    summary = summarize(results, config, datasets)
    written = write_outputs(out_dir, summary, results)
    if (out_dir / MODELS).is_dir():
        written.append(f"{MODELS}/")
    return CompareResult(out_dir, summary, time.perf_counter() - started, written)


def _preload() -> None:
    scipy_stats()
    plots_preload()


def _executor(config: Config, files: dict, prepared: dict, reporter) -> tuple[Any, int, str]:
    """The executor ``compare.executor`` names, how many runs it trains at once, and its name
    for the plan line (Ray: the cluster, which decides the number of workers)."""
    settings = config.compare
    if settings.executor != "ray":
        return LocalExecutor(config, settings.workers, files, prepared), 1, "local"
    from ..compare.ray_executor import RayExecutor

    executor = RayExecutor(
        config, files, settings.address, settings.cpus_per_run, settings.gpus_per_run, notify=reporter.message
    )
    return executor, executor.slots, executor.description
