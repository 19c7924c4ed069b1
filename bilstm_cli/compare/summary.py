"""A comparison's statistics.

Per dataset: each variant's final score (test scores when the dataset has a test file, else
validation) with a confidence interval over the paired repeats, the learning-curve summaries,
ranks, paired Wilcoxon tests against the best variant with Holm's correction, and a verdict
that claims only what the tests support.

Across datasets (two or more): each variant's mean score per dataset, average ranks, the
Friedman test (Iman–Davenport form), pairwise Wilcoxon-Holm, the groups of variants that are
not significantly different, and a verdict (see :mod:`bilstm_cli.stats.ranking`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..config.schema import Config, DatasetSpec
from ..engine.history import validation_points
from ..errors import UsageError
from ..stats.paired import (
    ALPHA,
    MIN_REPEATS_FOR_TEST,
    area_under_curve,
    epochs_to_threshold,
    holm,
    mean_interval,
    median_epochs,
    underpowered,
    wilcoxon_p,
)
from ..stats.ranking import compare_across_datasets
from .plan import result_path

Results = dict[str, dict[str, list[dict]]]  # dataset -> variant -> records in repeat order


def load_results(out: Path, datasets: list[str], variants: list[str], repeats: int) -> Results:
    """Every run's record, by dataset and variant, in repeat order."""
    return {
        dataset: {
            variant: [json.loads(result_path(out, dataset, variant, r).read_text()) for r in range(repeats)]
            for variant in variants
        }
        for dataset in datasets
    }


def validation_curve(record: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs, validation losses and validation accuracies of one run's logged points."""
    history = record["history"]
    logged = validation_points(history)
    epochs = np.array([history["epoch"][i] for i in logged])
    return (
        epochs,
        np.array([history["val_loss"][i] for i in logged]),
        np.array([history["val_accuracy"][i] for i in logged]),
    )


def summarize(results: Results, config: Config, datasets: list[DatasetSpec]) -> dict[str, Any]:
    """Per-dataset tables and, with two or more datasets, the statistics across them."""
    metric = config.compare.metric
    per_dataset = [summarize_dataset(dataset.name, results[dataset.name], config) for dataset in datasets]
    summary: dict[str, Any] = {
        "metric": metric,
        "higher_is_better": metric == "accuracy",
        "repeats": config.compare.repeats,
        "accuracy_threshold": config.compare.accuracy_threshold,
        "test": "paired Wilcoxon signed-rank vs the best variant, two-sided, Holm-adjusted",
        "datasets": per_dataset,
        "across_datasets": None,
    }
    if len(per_dataset) > 1:
        summary["across_datasets"] = across_datasets(per_dataset, metric)
        summary["best"] = summary["across_datasets"]["best"]
        summary["verdict"] = summary["across_datasets"]["verdict"]
    else:
        summary["best"] = per_dataset[0]["best"]
        summary["verdict"] = per_dataset[0]["verdict"]
    return summary


def summarize_dataset(name: str, results: dict[str, list[dict]], config: Config) -> dict[str, Any]:
    """Per-variant statistics, ranks, paired tests against the best variant and a verdict."""
    threshold = config.compare.accuracy_threshold
    metric = config.compare.metric
    repeats = config.compare.repeats
    splits = {record["final"]["split"] for records in results.values() for record in records}
    split = "test" if splits == {"test"} else "validation"
    rows, scores = [], {}
    for variant, records in results.items():
        curves = [validation_curve(r) for r in records]
        if any(len(c[0]) == 0 for c in curves) or any(r["final"]["loss"] is None for r in records):
            raise UsageError(
                f"dataset {name!r}: compare needs validation scores",
                "set data.validation_size > 0, data.validation_split or give validation data",
            )
        losses = [r["final"]["loss"] for r in records]
        accuracies = [r["final"]["accuracy"] for r in records]
        areas = [area_under_curve(c[0], c[1]) for c in curves]
        reached = [epochs_to_threshold(c[0], c[2], threshold) for c in curves]
        scores[variant] = losses if metric == "loss" else accuracies
        loss, accuracy, area = mean_interval(losses), mean_interval(accuracies), mean_interval(areas)
        rows.append(
            {
                "variant": variant,
                "repeats": len(records),
                "loss": loss.mean,
                "loss_ci": [loss.low, loss.high],
                "accuracy": accuracy.mean,
                "accuracy_ci": [accuracy.low, accuracy.high],
                "auc_val_loss": area.mean,
                "auc_val_loss_ci": [area.low, area.high],
                "epochs_to_threshold": median_epochs(reached),
                "threshold_reached": sum(r is not None for r in reached),
                "epochs": float(np.median([r["epochs_run"] for r in records])),
                "seconds_per_run": float(np.mean([r["seconds"] for r in records])),
            }
        )
    rows.sort(key=lambda row: -row["accuracy"] if metric == "accuracy" else row["loss"])
    best = rows[0]["variant"]
    p_values = [None if row["variant"] == best else wilcoxon_p(scores[row["variant"]], scores[best]) for row in rows]
    adjusted = holm(p_values)
    for rank, (row, p, p_holm) in enumerate(zip(rows, p_values, adjusted), start=1):
        row.update(rank=rank, p_value=p, p_holm=p_holm)
    epochs = sorted({row["epochs"] for row in rows})
    return {
        "dataset": name,
        "split": split,
        # k-fold ensembles without a test file: their validation scores are out of fold
        "out_of_fold": split == "validation" and all("folds" in r for records in results.values() for r in records),
        "metric": f"final {split} {metric} ({'higher' if metric == 'accuracy' else 'lower'} is better)",
        "repeats": repeats,
        "epochs": epochs[0] if len(epochs) == 1 else epochs,
        "best": best,
        "underpowered": repeats < MIN_REPEATS_FOR_TEST,
        "variants": rows,
        "verdict": verdict(rows, repeats, split, metric),
    }


def verdict(rows: list[dict], repeats: int, split: str = "validation", metric: str = "loss") -> str:
    """One sentence that claims no more than the test supports."""
    best = rows[0]
    name = best["variant"]
    extreme = "highest" if metric == "accuracy" else "lowest"
    what = f"final {split} {metric}"
    if len(rows) == 1:
        return f"only one variant ({name}); nothing to compare"
    if repeats == 1:
        return (
            f"{name} had the {extreme} {what} in a single run per variant; with one repeat there is "
            "no confidence interval and no test, so this ranking may be noise (the tutorial's situation)"
        )
    if repeats < MIN_REPEATS_FOR_TEST:
        advice = f"use --repeats {MIN_REPEATS_FOR_TEST} or more before claiming a difference"
        return underpowered(f"{name} ranks first", repeats, "repeats", MIN_REPEATS_FOR_TEST, advice)
    better_than = [r["variant"] for r in rows[1:] if r["p_holm"] is not None and r["p_holm"] < ALPHA]
    ties = [r for r in rows[1:] if r["variant"] not in better_than]
    if not ties:
        worst_p = max(r["p_holm"] for r in rows[1:])
        comparison = "higher" if metric == "accuracy" else "lower"
        return (
            f"{name} has the {extreme} {what}, significantly {comparison} than every other variant "
            f"(Holm-adjusted p <= {worst_p:.3g})"
        )
    tie_text = ", ".join(f"{r['variant']} (p={r['p_holm']:.3g})" for r in ties)
    text = f"{name} ranks first but is not significantly better than {tie_text}"
    if better_than:
        text += f"; it is significantly better than {', '.join(better_than)}"
    return text


def across_datasets(per_dataset: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """Average ranks, Friedman, pairwise Wilcoxon-Holm and cliques over the datasets' mean scores."""
    names = [row["variant"] for row in per_dataset[0]["variants"]]
    names.sort()
    scores = np.array([[_row(dataset, name)[metric] for name in names] for dataset in per_dataset])
    result = compare_across_datasets(scores, names, higher_is_better=metric == "accuracy")
    friedman = result.friedman
    order = sorted(names, key=lambda name: result.average_ranks[name])
    return {
        "datasets": [dataset["dataset"] for dataset in per_dataset],
        "splits": {dataset["dataset"]: dataset["split"] for dataset in per_dataset},
        "scores": {dataset["dataset"]: dict(zip(names, row)) for dataset, row in zip(per_dataset, scores.tolist())},
        "average_ranks": {name: result.average_ranks[name] for name in order},
        "ranks": {
            dataset["dataset"]: dict(zip(names, row)) for dataset, row in zip(per_dataset, result.ranks.matrix.tolist())
        },
        "friedman": {
            "chi2": friedman.chi2,
            "p_value": friedman.p_value,
            # infinite when every dataset ranks the variants alike: JSON has no inf, so say it in words
            "iman_davenport_f": friedman.f_statistic if np.isfinite(friedman.f_statistic) else "inf",
            "f_df": list(friedman.f_df),
            "f_p_value": friedman.f_p_value,
            "reason": friedman.reason,
        },
        "pairwise": [
            {"a": p.a, "b": p.b, "p": p.p, "p_holm": p.p_holm, "significant": p.significant, "better": p.better}
            for p in result.pairwise
        ],
        "cliques": result.cliques,
        "best": order[0],
        "verdict": result.verdict,
    }


def _row(dataset: dict[str, Any], variant: str) -> dict[str, Any]:
    return next(row for row in dataset["variants"] if row["variant"] == variant)
