"""Where the time of the card's comparison goes: one of its programs, phase by phase.

    python benchmarks/profile_card.py [--backend tensorflow|jax] [--runs 20] [--epochs 3000]

Builds the program that `bilstm compare --modes sum,mul,ave,concat` trains in each worker (the
default plan: 20 runs, 4 variants x 5 repeats, BiLSTM-20, batch 32, T=10) through the same
public pieces `compare` uses, and times each phase in this one process: importing the backend,
preparing the data, building and compiling the program, and training. Training is profiled
(cProfile, main thread) to split it into the compiled training calls, validation, and the
Python loop around them; batches are made in a background thread and overlap the compiled
calls. Prints one JSON object, with the achieved arithmetic rate and the practical floor.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# one BiLSTM-20 step at batch 32, T=10, forward and backward (issue 24's count)
FLOP_PER_COPY_STEP = 6.7e6
SGEMM_PEAK_GFLOPS = 176.0  # measured on the project's 2-core machine (issue 24)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="tensorflow")
    parser.add_argument("--runs", type=int, default=20, help="runs in the program (compare.runs_per_program)")
    parser.add_argument("--epochs", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1, help="CPU cores and threads (a compare worker has 1 of 2)")
    options = parser.parse_args()
    os.environ["BILSTM_BACKEND"] = options.backend
    if hasattr(os, "sched_setaffinity"):  # as compare's worker: its own share of the cores
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: options.threads])
    phases: dict[str, float] = {}

    started = time.perf_counter()
    from bilstm_cli import backend

    backend.select(options.backend)
    backend.keras.__name__  # noqa: B018 - imports Keras and its backend now, to time it
    from bilstm_cli.compare.execute import job_data
    from bilstm_cli.compare.plan import comparison_datasets, plan_jobs, run_config
    from bilstm_cli.config.resolve import resolve_config
    from bilstm_cli.config.variants import parse_variants
    from bilstm_cli.device import select_device
    from bilstm_cli.engine.loop import FitCallbacks
    from bilstm_cli.engine.session import TrainingSession

    phases["import backend and bilstm"] = time.perf_counter() - started

    started = time.perf_counter()
    settings = [f"train.epochs={options.epochs}", f"compare.runs_per_program={options.runs}", "train.seed=1"]
    config = resolve_config(assignments=settings)
    variants = parse_variants(None, ["sum", "mul", "ave", "concat"], [])
    datasets = comparison_datasets(config)
    configs = {(d.name, v.name): run_config(config, d, v) for d in datasets for v in variants}
    job = plan_jobs(configs, datasets, variants, config.compare.repeats, config.compare.runs_per_program)[0]
    seeds = [config.train.seed + r for r in range(config.compare.repeats)]
    run_configs = [part.variant.apply(config) for part in job.parts for _ in part.repeats]
    run_seeds = [seeds[repeat] for part in job.parts for repeat in part.repeats]
    data = job_data(job.dataset.name, run_configs[0], seeds[0], None, {})
    device = select_device("cpu", threads=options.threads)
    phases["plan and data"] = time.perf_counter() - started

    started = time.perf_counter()
    session = TrainingSession(run_configs, run_seeds, data, device)
    phases["build program"] = time.perf_counter() - started
    phases["compile"] = session.compile()

    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    session.fit(FitCallbacks())
    profile.disable()
    training = time.perf_counter() - started
    stats = pstats.Stats(profile)

    def cumulative(file_suffix: str, function: str) -> float:
        return sum(
            entry[3]
            for (file, _, name), entry in stats.stats.items()
            if file.endswith(file_suffix) and name == function
        )

    compiled = cumulative(os.path.join("engine", "base.py"), "train")
    validation = cumulative(os.path.join("engine", "base.py"), "evaluate")
    copy_steps = len(run_configs) * options.epochs * (config.data.samples_per_epoch // config.train.batch_size)
    phases["train: compiled training calls"] = compiled
    phases["train: validation (every logged epoch)"] = validation
    phases["train: Python loop, waiting for batches"] = training - compiled - validation
    result = {
        "backend": options.backend,
        "runs": len(run_configs),
        "epochs": options.epochs,
        "seconds": {name: round(value, 3) for name, value in phases.items()},
        "ms_per_copy_step_training": round(1e3 * compiled / copy_steps, 4),
        "ms_per_copy_step_all": round(1e3 * training / copy_steps, 4),
        "gflops_achieved_training": round(copy_steps * FLOP_PER_COPY_STEP / compiled / 1e9, 2),
        "floor_seconds_at_sgemm_peak": round(copy_steps * FLOP_PER_COPY_STEP / (SGEMM_PEAK_GFLOPS * 1e9), 2),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
