"""The plan of a comparison: which (dataset, variant, repeat) runs, their seeds, and how they are
grouped into jobs.

Pairing: repeat ``r`` uses seed ``base + r`` for every variant, so within a dataset all
variants of a repeat see the same training sequences, the same validation set and the same
initialisation stream; differences within a repeat are due to the variant.

Cost: a job trains variants that compile to the same program (same model, data shapes and
optimizer; only, e.g., the learning rate or the number of epochs differ) one after another
with one compiled engine, so a grid over learning rates or epochs compiles once per dataset.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config.program import program_key
from ..config.recipe import file_recipe, wants_split
from ..config.resolve import with_overrides
from ..config.schema import Config, DatasetSpec
from ..config.variants import Variant, flatten
from ..errors import UsageError
from ..runs.directory import COMPARISON_CONFIGS

RESULTS = "results"
CONFIGS = COMPARISON_CONFIGS  # each run's full config, by dataset and variant
TENSORBOARD = "tensorboard"
GENERATED = "generated"  # the name of the built-in task as a dataset


@dataclass
class Part:
    """Some repeats of one variant, inside a job (a segment of its program)."""

    variant: Variant
    repeats: list[int]


@dataclass
class Job:
    """One unit of work for an executor: the runs of one compiled program, on one dataset.

    Its parts are variants over the same block of repeats; the program trains them all at
    once (see :class:`bilstm_cli.engine.session.TrainingSession`), variant after variant in
    copy order. Which runs form a job is fixed by the plan alone (never by the number of
    workers, the executor or what is left to run), so results do not depend on them.
    """

    dataset: DatasetSpec
    parts: list[Part] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return sum(len(part.repeats) for part in self.parts)


# ---------------------------------------------------------------------------- datasets


def comparison_datasets(config: Config, data_paths: tuple[str, ...] = ()) -> list[DatasetSpec]:
    """The datasets to compare on: ``--data`` files, else ``compare.datasets``, else the data section.

    Each ``--data FILE`` is a dataset named after the file; names must be unique.
    """
    if data_paths:
        datasets = [DatasetSpec(name=Path(path).stem if path != "-" else "stdin", train=path) for path in data_paths]
    elif config.compare.datasets:
        datasets = list(config.compare.datasets)
    else:
        data = config.data
        datasets = [DatasetSpec(name=Path(data.train_path).stem if data.train_path else GENERATED)]
    datasets = [with_recipe(config, dataset) for dataset in datasets]
    names = [dataset.name for dataset in datasets]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"two datasets are called {repeated[0]!r}", "give them distinct names in compare.datasets")
    if "-" in data_paths and len(data_paths) > 1:
        raise UsageError("standard input can be one dataset only; give the others as files")
    return datasets


def with_recipe(config: Config, dataset: DatasetSpec) -> DatasetSpec:
    """A file dataset with the recipe for dataset files in its settings, for every key the user
    did not set (see :mod:`bilstm_cli.config.recipe`). Recorded with the comparison, so
    ``--resume`` trains with exactly these values."""
    if dataset.train is None:
        return dataset
    explicit = config._explicit
    split = wants_split(explicit, config.train.refit.enabled, config.data.validation_split)
    recipe = file_recipe(explicit, dataset.val is not None or bool(config.data.val_path), split)
    return dataset.model_copy(update={"settings": {**recipe, **flatten(dataset.settings)}})


def dataset_config(config: Config, dataset: DatasetSpec) -> Config:
    """``config`` with one dataset's files and settings (validated; errors name the dataset)."""
    overrides = flatten(dataset.settings)
    if dataset.train is not None:
        overrides.update(
            {"data.train_path": dataset.train, "data.val_path": dataset.val, "data.test_path": dataset.test}
        )
    elif dataset.val or dataset.test:
        raise UsageError(f"dataset {dataset.name!r} has val/test files but no train file")
    return with_overrides(config, overrides, f"dataset {dataset.name!r}") if overrides else config


def run_config(config: Config, dataset: DatasetSpec, variant: Variant) -> Config:
    """The full config of one (dataset, variant): what ``bilstm train --config`` would rerun."""
    return variant.apply(dataset_config(config, dataset))


# ---------------------------------------------------------------------------- runs and jobs


def repeat_seeds(config: Config) -> list[int]:
    """The seed of every repeat: ``train.seed + r``, the same for every variant (pairing)."""
    return [config.train.seed + r for r in range(config.compare.repeats)]


def plan_jobs(
    run_configs: dict[tuple[str, str], Config],
    datasets: list[DatasetSpec],
    variants: list[Variant],
    repeats: int,
    runs_per_program: int,
) -> list[Job]:
    """Every run of the comparison, grouped into jobs (programs).

    Per dataset, variants with the same :func:`~bilstm_cli.config.program.program_key` share
    programs; their repeats are cut into blocks so that a job holds at most
    ``runs_per_program`` models (at least one repeat of every variant of the group): runs, or
    with ``train.folds`` k, k models per run (a k-fold ensemble's members train in its program).

    ``run_configs`` holds each (dataset, variant)'s config (see :func:`run_config`).
    """
    jobs = []
    for dataset in datasets:
        groups: dict[str, list[Variant]] = {}
        for variant in variants:
            groups.setdefault(program_key(run_configs[(dataset.name, variant.name)]), []).append(variant)
        for members in groups.values():
            folds = run_configs[(dataset.name, members[0].name)].train.folds
            block = max(1, runs_per_program // (len(members) * max(1, folds)))
            for first in range(0, repeats, block):
                block_repeats = list(range(first, min(first + block, repeats)))
                jobs.append(Job(dataset, [Part(variant, block_repeats) for variant in members]))
    return jobs


def jobs_to_run(jobs: list[Job], missing: dict[tuple[str, str], list[int]]) -> list[Job]:
    """The jobs with a run still missing, whole: a program is trained again as planned (its
    finished runs compute the same numbers again), so no run's group depends on a resume."""
    return [
        job
        for job in jobs
        if any(set(part.repeats) & set(missing.get((job.dataset.name, part.variant.name), [])) for part in job.parts)
    ]


# ---------------------------------------------------------------------------- files


def slug(name: str) -> str:
    """A file-name-safe form of a dataset or variant name (``bilstm-sum lr=0.003`` ->
    ``bilstm-sum_lr=0.003``)."""
    safe = re.sub(r"[^A-Za-z0-9._=+-]+", "_", name).strip("_") or "_"
    if not name.isascii():  # non-ASCII letters all become "_": a short hash keeps such names apart
        safe = f"{safe}-{hashlib.sha1(name.encode()).hexdigest()[:8]}".lstrip("_-")
    return safe


def check_file_names(datasets: list[DatasetSpec], variants: list[Variant]) -> None:
    """Distinct names must stay distinct as file names."""
    for kind, names in (("datasets", [d.name for d in datasets]), ("variants", [v.name for v in variants])):
        slugs = [slug(name) for name in names]
        for index, value in enumerate(slugs):
            if slugs.index(value) != index:
                first = names[slugs.index(value)]
                raise UsageError(f"{kind} {first!r} and {names[index]!r} would share the file name {value!r}")


def result_path(out: Path, dataset: str, variant: str, repeat: int) -> Path:
    """Where the driver writes one finished run (what ``--resume`` checks)."""
    return out / RESULTS / slug(dataset) / f"{slug(variant)}__repeat-{repeat:03d}.json"


def missing_runs(
    out: Path, datasets: list[DatasetSpec], variants: list[Variant], repeats: int
) -> dict[tuple[str, str], list[int]]:
    """Per (dataset, variant), the repeats without a result file."""
    return {
        (d.name, v.name): [r for r in range(repeats) if not result_path(out, d.name, v.name, r).exists()]
        for d in datasets
        for v in variants
    }
