"""``bilstm compare``: train variants x paired repeats, then summarise with statistics.

Finished (variant, repeat) results are written by this process as they arrive, so an
interrupted comparison keeps them and ``--resume`` only runs what is missing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import backend
from ..compare.execute import LocalExecutor
from ..compare.outputs import write_outputs
from ..compare.plan import RESULTS, missing_runs, plan_jobs, result_path
from ..compare.summary import load_results, summarize
from ..config.schema import Config
from ..config.variants import Variant
from ..data.prepare import prepare_training_data
from ..engine.session import recordable
from ..errors import Interrupted, UsageError
from ..runs import directory
from ..runs.files import write_json
from ..signals import StopRequest


@dataclass
class CompareResult:
    out: Path
    summary: dict[str, Any]
    wall_seconds: float


def run_compare(
    config: Config,
    variants: list[Variant],
    reporter,
    out: str | None = None,
    resume: str | None = None,
) -> CompareResult:
    """Run every missing (variant, repeat), then write curves, summary, plot and config.

    Args:
        config: the resolved config (for ``resume``: the saved one, see :func:`resumed_config`).
        variants: the variants to compare.
        reporter: receives the plan and each finished run (the CLI renders them).
        out: output directory for a new comparison (default ``output.root/<timestamp>-compare``).
        resume: the directory of an interrupted comparison to finish.
    """
    started = time.perf_counter()
    backend.select(config.train.backend)
    if config.train.early_stopping.enabled:
        raise UsageError(
            "compare does not use early stopping: every variant trains for the same epochs",
            "remove train.early_stopping from the config",
        )
    if resume is None:
        config = recordable(config)
        config.compare.variants = [v.name for v in variants]
    for variant in variants:
        variant.apply(config)  # a bad variant value fails here, before anything trains
    # bad data fails before anything is written
    data = prepare_training_data(config.data, config.train.seed, config.train.class_weight)
    if resume is None:
        out_dir = directory.prepare_run_directory(
            directory.run_directory(config.output, "compare", out), config.output.overwrite
        )
        directory.save_config(out_dir, config)
    else:
        out_dir = Path(resume)
    (out_dir / RESULTS).mkdir(exist_ok=True)

    repeats = config.compare.repeats
    missing = missing_runs(out_dir, variants, repeats)
    total = len(variants) * repeats
    done = total - sum(len(m) for m in missing.values())
    workers = config.compare.workers
    jobs = plan_jobs(variants, missing, workers)
    reporter.start(total, done, workers, config)

    def record_result(record: dict) -> None:
        write_json(result_path(out_dir, record["variant"], record["repeat"]), record)
        reporter.on_result(record)

    with StopRequest("stopping at the next safe point; finished runs are kept (press again to quit at once)") as stop:
        LocalExecutor(config, workers, data).run(jobs, record_result, lambda: stop.requested)
    reporter.close()
    names = [v.name for v in variants]
    remaining = sum(len(m) for m in missing_runs(out_dir, variants, repeats).values())
    if remaining:
        raise Interrupted(
            f"stopped with {remaining} of {total} runs missing; finished runs are saved in {out_dir}",
            f"resume with: bilstm compare --resume {out_dir}",
        )
    results = load_results(out_dir, names, repeats)
    summary = summarize(results, config)
    write_outputs(out_dir, summary, results, config)
    return CompareResult(out_dir, summary, time.perf_counter() - started)
