"""``bilstm compare``: train variants x paired repeats, then summarise with statistics.

Pairing: repeat ``r`` uses seed ``base + r`` for every variant, so all variants of a repeat
see the same training sequences, the same validation set and the same initialisation
stream; differences within a repeat are due to the variant.

Speed: one compiled engine per variant (per worker); each repeat only reinitialises weights
and optimizer state. ``workers > 1`` spreads (variant, repeats) jobs over processes.
Finished (variant, repeat) results are written as they complete, so ``--resume`` only runs
what is missing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import runs
from ..config import DIRECTIONS, MERGE_MODES, Config
from ..errors import Interrupted, UsageError
from ..stats import (
    ALPHA,
    MIN_REPEATS_FOR_TEST,
    area_under_curve,
    epochs_to_threshold,
    holm,
    mean_interval,
    median_epochs,
    wilcoxon_p,
)

VARIANTS = tuple(f"lstm-{d}" for d in DIRECTIONS) + tuple(f"bilstm-{m}" for m in MERGE_MODES)
RESULTS = "results"


def parse_variants(variants: list[str] | None, modes: list[str] | None, default: list[str]) -> list[str]:
    """Variant names from --variants and --modes (shorthand for bilstm-<mode>), validated."""
    chosen: list[str] = []
    for mode in modes or []:
        if mode not in MERGE_MODES:
            raise UsageError(f"unknown merge mode {mode!r}", f"valid modes: {', '.join(MERGE_MODES)}")
        chosen.append(f"bilstm-{mode}")
    chosen = list(variants or []) + chosen if (variants or modes) else list(default)
    for name in chosen:
        if name not in VARIANTS:
            raise UsageError(f"unknown variant {name!r}", f"valid variants: {', '.join(VARIANTS)}")
    if len(set(chosen)) != len(chosen):
        raise UsageError(f"a variant is listed twice: {', '.join(chosen)}")
    if len(chosen) < 1:
        raise UsageError("no variants to compare")
    return chosen


def variant_config(config: Config, variant: str) -> Config:
    """The config with its model switched to ``variant`` (other model settings kept)."""
    kind, _, detail = variant.partition("-")
    model = config.model.model_dump()
    model.update(kind=kind, merge=detail if kind == "bilstm" else None, direction=detail if kind == "lstm" else None)
    return config.model_copy(update={"model": type(config.model).model_validate(model)})


def repeat_seeds(config: Config) -> list[int]:
    return [config.train.seed + r for r in range(config.compare.repeats)]


# ---------------------------------------------------------------------------- running


@dataclass
class Job:
    variant: str
    repeats: list[int]


def plan_jobs(variants: list[str], missing: dict[str, list[int]], workers: int) -> list[Job]:
    """One job per variant (one compile each); split repeats further if workers would idle."""
    jobs = [Job(v, missing[v]) for v in variants if missing[v]]
    while len(jobs) < workers and any(len(job.repeats) > 1 for job in jobs):
        largest = max(jobs, key=lambda job: len(job.repeats))
        half = len(largest.repeats) // 2
        jobs.remove(largest)
        jobs += [Job(largest.variant, largest.repeats[:half]), Job(largest.variant, largest.repeats[half:])]
    return jobs


def result_path(out: Path, variant: str, repeat: int) -> Path:
    return out / RESULTS / f"{variant}__repeat-{repeat:03d}.json"


def run_job(
    config: Config,
    job: Job,
    out: Path,
    on_result: Callable[[dict], None],
    should_stop: Callable[[], bool],
    threads: int | None = None,
    data=None,
) -> None:
    """Train every repeat of one job's variant with one compiled engine; write each result.

    ``data``: the prepared training data when the caller has it (worker processes prepare their own).
    """
    from ..device import select_device
    from ..training_data import prepare_training_data
    from .train import TrainingSession

    device = select_device(config.train.device, threads=threads)
    seeds = repeat_seeds(config)
    if data is None:
        data = prepare_training_data(config, seeds[0])
    settings = variant_config(config, job.variant)
    session = TrainingSession(settings, data, device, seeds[job.repeats[0]])
    session.compile()
    silent = _Silent()
    for repeat in job.repeats:
        if should_stop():
            return
        session.restart(seeds[repeat])
        started = time.perf_counter()
        result = session.fit(silent, lambda epoch, history: None, should_stop)
        if result.stopped == "interrupted":
            return
        history = result.history
        record = {
            "variant": job.variant,
            "repeat": repeat,
            "seed": seeds[repeat],
            "data_fingerprint": _fingerprint(session),
            "history": history.to_dict(),
            "seconds": time.perf_counter() - started,
        }
        runs.write_json(result_path(out, job.variant, repeat), record)
        on_result(record)


class _Silent:
    """Compare reports whole runs, not epochs."""

    def on_log(self, record) -> None: ...

    def on_progress(self, epoch: int) -> None: ...


def _fingerprint(session) -> str:
    """Digest of the first epoch's training batches and the validation set (pairing check)."""
    digest = hashlib.sha1()
    for array in session.source.batches(0, 1).arrays():
        digest.update(np.ascontiguousarray(array).tobytes())
    if session.validation is not None:
        digest.update(session.validation.x.tobytes())
    return digest.hexdigest()[:16]


def _worker(config_json: str, job: Job, out: str, queue, stop_event, threads: int) -> None:
    """Process entry point for --workers > 1 (spawned: TensorFlow is imported fresh)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    config = Config.model_validate_json(config_json)
    run_job(config, job, Path(out), queue.put, stop_event.is_set, threads)


@dataclass
class CompareResult:
    out: Path
    summary: dict[str, Any]
    wall_seconds: float


def run_compare(
    config: Config,
    variants: list[str],
    out: Path,
    reporter,
    resume: bool = False,
) -> CompareResult:
    """Run every missing (variant, repeat), then write curves, summary, plot and config."""
    from ..signals import StopRequest
    from ..training_data import prepare_training_data
    from .train import with_seed

    started = time.perf_counter()
    if config.train.early_stopping.enabled:
        raise UsageError(
            "compare does not use early stopping: every variant trains for the same epochs",
            "remove train.early_stopping from the config",
        )
    if resume:
        saved = out / runs.CONFIG
        if not saved.exists():
            raise UsageError(f"{out} has no {runs.CONFIG}: nothing to resume")
    else:
        config = with_seed(config)
        config.compare.variants = variants
    data = prepare_training_data(config, config.train.seed)  # bad data fails before anything is written
    if not resume:
        runs.prepare_run_directory(out, config.output.overwrite)
        runs.save_config(out, config)
    (out / RESULTS).mkdir(exist_ok=True)

    repeats = range(config.compare.repeats)
    missing = {v: [r for r in repeats if not result_path(out, v, r).exists()] for v in variants}
    total = len(variants) * config.compare.repeats
    done = total - sum(len(m) for m in missing.values())
    workers = config.compare.workers
    jobs = plan_jobs(variants, missing, workers)
    reporter.start(total, done, workers, config)

    with StopRequest("stopping at the next safe point; finished runs are kept (press again to quit at once)") as stop:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                run_job(config, job, out, reporter.on_result, lambda: stop.requested, data=data)
        else:
            _run_parallel(config, jobs, out, reporter, stop, workers)
    reporter.close()
    remaining = [(v, r) for v in variants for r in repeats if not result_path(out, v, r).exists()]
    if remaining:
        raise Interrupted(
            f"stopped with {len(remaining)} of {total} runs missing; finished runs are saved in {out}",
            f"resume with: bilstm compare --resume {out}",
        )
    results = load_results(out, variants, config.compare.repeats)
    summary = summarize(results, config)
    write_outputs(out, summary, results, config)
    return CompareResult(out, summary, time.perf_counter() - started)


def _run_parallel(config: Config, jobs: list[Job], out: Path, reporter, stop, workers: int) -> None:
    import multiprocessing
    import queue as queue_module
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    manager = context.Manager()
    results, stop_event = manager.Queue(), manager.Event()
    threads = max(1, (os.cpu_count() or 1) // workers)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            pending = {
                pool.submit(_worker, config.model_dump_json(), job, str(out), results, stop_event, threads)
                for job in jobs
            }
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()  # re-raise a worker's error here
                if stop.requested:
                    stop_event.set()
                while True:
                    try:
                        reporter.on_result(results.get_nowait())
                    except queue_module.Empty:
                        break
    finally:
        manager.shutdown()


# ---------------------------------------------------------------------------- statistics


def load_results(out: Path, variants: list[str], repeats: int) -> dict[str, list[dict]]:
    loaded = {}
    for variant in variants:
        loaded[variant] = [json.loads(result_path(out, variant, r).read_text()) for r in range(repeats)]
    return loaded


def _validation_curve(record: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    history = record["history"]
    logged = [i for i, v in enumerate(history["val_loss"]) if v is not None and not _isnan(v)]
    epochs = np.array([history["epoch"][i] for i in logged])
    return (
        epochs,
        np.array([history["val_loss"][i] for i in logged]),
        np.array([history["val_accuracy"][i] for i in logged]),
    )


def _isnan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def summarize(results: dict[str, list[dict]], config: Config) -> dict[str, Any]:
    """Per-variant statistics, ranks, paired tests against the best variant and a verdict."""
    threshold = config.compare.accuracy_threshold
    repeats = config.compare.repeats
    rows = []
    final_losses = {}
    for variant, records in results.items():
        curves = [_validation_curve(r) for r in records]
        if any(len(c[0]) == 0 for c in curves):
            raise UsageError("compare needs validation scores: set data.validation_size > 0 or give validation data")
        losses = [c[1][-1] for c in curves]
        accuracies = [c[2][-1] for c in curves]
        areas = [area_under_curve(c[0], c[1]) for c in curves]
        reached = [epochs_to_threshold(c[0], c[2], threshold) for c in curves]
        final_losses[variant] = losses
        loss, accuracy, area = mean_interval(losses), mean_interval(accuracies), mean_interval(areas)
        rows.append(
            {
                "variant": variant,
                "repeats": len(records),
                "val_loss": loss.mean,
                "val_loss_ci": [loss.low, loss.high],
                "val_accuracy": accuracy.mean,
                "val_accuracy_ci": [accuracy.low, accuracy.high],
                "auc_val_loss": area.mean,
                "auc_val_loss_ci": [area.low, area.high],
                "epochs_to_threshold": median_epochs(reached),
                "threshold_reached": sum(r is not None for r in reached),
                "seconds_per_run": float(np.mean([r["seconds"] for r in records])),
            }
        )
    rows.sort(key=lambda row: row["val_loss"])
    best = rows[0]["variant"]
    p_values = [
        None if row["variant"] == best else wilcoxon_p(final_losses[row["variant"]], final_losses[best]) for row in rows
    ]
    adjusted = holm(p_values)
    for rank, (row, p, p_holm) in enumerate(zip(rows, p_values, adjusted), start=1):
        row.update(rank=rank, p_value=p, p_holm=p_holm)
    return {
        "metric": "final validation loss (lower is better)",
        "repeats": repeats,
        "epochs": config.train.epochs,
        "accuracy_threshold": threshold,
        "best": best,
        "test": "paired Wilcoxon signed-rank vs the best variant, two-sided, Holm-adjusted",
        "underpowered": repeats < MIN_REPEATS_FOR_TEST,
        "variants": rows,
        "verdict": verdict(rows, repeats),
    }


def verdict(rows: list[dict], repeats: int) -> str:
    """One sentence that claims no more than the test supports."""
    best = rows[0]
    name = best["variant"]
    if len(rows) == 1:
        return f"only one variant ({name}); nothing to compare"
    if repeats == 1:
        return (
            f"{name} had the lowest final validation loss in a single run per variant; with one repeat there is "
            "no confidence interval and no test, so this ranking may be noise (the tutorial's situation)"
        )
    if repeats < MIN_REPEATS_FOR_TEST:
        return (
            f"{name} ranks first, but with {repeats} repeats the Wilcoxon test cannot reach p < {ALPHA} "
            f"(underpowered); use --repeats {MIN_REPEATS_FOR_TEST} or more before claiming a difference"
        )
    better_than = [r["variant"] for r in rows[1:] if r["p_holm"] is not None and r["p_holm"] < ALPHA]
    ties = [r for r in rows[1:] if r["variant"] not in better_than]
    if not ties:
        worst_p = max(r["p_holm"] for r in rows[1:])
        return (
            f"{name} has the lowest final validation loss, significantly lower than every other variant "
            f"(Holm-adjusted p <= {worst_p:.3g})"
        )
    tie_text = ", ".join(f"{r['variant']} (p={r['p_holm']:.3g})" for r in ties)
    text = f"{name} ranks first but is not significantly better than {tie_text}"
    if better_than:
        text += f"; it is significantly better than {', '.join(better_than)}"
    return text


# ---------------------------------------------------------------------------- files


def write_outputs(out: Path, summary: dict[str, Any], results: dict[str, list[dict]], config: Config) -> None:
    """curves.csv, summary.csv, summary.json and compare.png (all written atomically)."""
    from ..plots import plot_comparison

    curve_rows = []
    for variant, records in results.items():
        for record in records:
            history = record["history"]
            for i, epoch in enumerate(history["epoch"]):
                curve_rows.append(
                    (
                        variant,
                        record["repeat"],
                        epoch,
                        history["loss"][i],
                        history["accuracy"][i],
                        _nan(history["val_loss"][i]),
                        _nan(history["val_accuracy"][i]),
                    )
                )
    runs.write_csv(
        out / "curves.csv", ("variant", "repeat", "epoch", "loss", "accuracy", "val_loss", "val_accuracy"), curve_rows
    )
    columns = (
        "rank",
        "variant",
        "repeats",
        "val_loss",
        "val_loss_ci_low",
        "val_loss_ci_high",
        "val_accuracy",
        "val_accuracy_ci_low",
        "val_accuracy_ci_high",
        "auc_val_loss",
        "epochs_to_threshold",
        "threshold_reached",
        "p_value",
        "p_holm",
        "seconds_per_run",
    )
    summary_rows = [
        (
            row["rank"],
            row["variant"],
            row["repeats"],
            row["val_loss"],
            *row["val_loss_ci"],
            row["val_accuracy"],
            *row["val_accuracy_ci"],
            row["auc_val_loss"],
            _nan(row["epochs_to_threshold"]),
            row["threshold_reached"],
            _nan(row["p_value"]),
            _nan(row["p_holm"]),
            row["seconds_per_run"],
        )
        for row in summary["variants"]
    ]
    runs.write_csv(out / "summary.csv", columns, summary_rows)
    runs.write_json(out / "summary.json", summary)
    plot_comparison(
        _plot_curves(results),
        out / "compare.png",
        f"{len(results)} variants x {summary['repeats']} repeats, {summary['epochs']} epochs",
    )


def _nan(value) -> float:
    return math.nan if value is None else float(value)


def _plot_curves(results: dict[str, list[dict]]) -> dict[str, dict[str, np.ndarray]]:
    from ..stats import mean_interval

    curves = {}
    for variant, records in results.items():
        val_epochs = _validation_curve(records[0])[0]
        val = np.array([_validation_curve(r)[1] for r in records])
        intervals = [mean_interval(val[:, j]) for j in range(val.shape[1])]
        curves[variant] = {
            "epochs": np.array(records[0]["history"]["epoch"]),
            "train_loss": np.array([r["history"]["loss"] for r in records]),
            "val_epochs": val_epochs,
            "val_mean": np.array([i.mean for i in intervals]),
            "val_low": np.array([i.low for i in intervals]),
            "val_high": np.array([i.high for i in intervals]),
        }
    return curves
