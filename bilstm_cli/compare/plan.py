"""The plan of a comparison: which (variant, repeat) runs, their seeds, and how they are grouped
into jobs (a job trains one variant's repeats one after another, with one compiled engine).

Pairing: repeat ``r`` uses seed ``base + r`` for every variant, so all variants of a repeat
see the same training sequences, the same validation set and the same initialisation
stream; differences within a repeat are due to the variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config.schema import Config
from ..config.variants import Variant

RESULTS = "results"


@dataclass
class Job:
    """One unit of work for an executor: ``variant``'s ``repeats``, trained in this order."""

    variant: Variant
    repeats: list[int]


def repeat_seeds(config: Config) -> list[int]:
    """The seed of every repeat: ``train.seed + r``, the same for every variant (pairing)."""
    return [config.train.seed + r for r in range(config.compare.repeats)]


def plan_jobs(variants: list[Variant], missing: dict[str, list[int]], workers: int) -> list[Job]:
    """One job per variant (one compile each); split repeats further if workers would idle."""
    jobs = [Job(v, missing[v.name]) for v in variants if missing[v.name]]
    while len(jobs) < workers and any(len(job.repeats) > 1 for job in jobs):
        largest = max(jobs, key=lambda job: len(job.repeats))
        half = len(largest.repeats) // 2
        jobs.remove(largest)
        jobs += [Job(largest.variant, largest.repeats[:half]), Job(largest.variant, largest.repeats[half:])]
    return jobs


def result_path(out: Path, variant: str, repeat: int) -> Path:
    """Where the driver writes one finished run (what ``--resume`` checks)."""
    return out / RESULTS / f"{variant}__repeat-{repeat:03d}.json"


def missing_runs(out: Path, variants: list[Variant], repeats: int) -> dict[str, list[int]]:
    """Per variant, the repeats without a result file."""
    return {v.name: [r for r in range(repeats) if not result_path(out, v.name, r).exists()] for v in variants}
