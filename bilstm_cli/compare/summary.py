"""A comparison's statistics: per-variant scores with confidence intervals, ranks, paired
tests against the best variant, and a verdict that claims only what the tests support."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..config.schema import Config
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
    wilcoxon_p,
)
from .plan import result_path


def load_results(out: Path, variants: list[str], repeats: int) -> dict[str, list[dict]]:
    """Every run's record, by variant, in repeat order."""
    loaded = {}
    for variant in variants:
        loaded[variant] = [json.loads(result_path(out, variant, r).read_text()) for r in range(repeats)]
    return loaded


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


def summarize(results: dict[str, list[dict]], config: Config) -> dict[str, Any]:
    """Per-variant statistics, ranks, paired tests against the best variant and a verdict."""
    threshold = config.compare.accuracy_threshold
    repeats = config.compare.repeats
    rows = []
    final_losses = {}
    for variant, records in results.items():
        curves = [validation_curve(r) for r in records]
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
