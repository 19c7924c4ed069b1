"""A comparison's files, all written atomically by the driver:

curves.csv      every epoch of every run (dataset, variant, repeat, epoch, scores)
summary.csv     one row per (dataset, variant): final scores with intervals, rank, p-values
summary.json    everything above plus the verdicts and the statistics across datasets
compare.png     mean validation loss per variant (one compare-<dataset>.png per dataset)
ranks.csv       with several datasets: average rank and the rank on each dataset per variant
cd.png          with several datasets: the critical-difference diagram
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio.files import write_csv, write_json
from ..report.cd_diagram import plot_critical_difference
from ..report.plots import plot_comparison
from ..stats.paired import ALPHA, mean_interval
from .plan import slug
from .summary import Results, validation_curve

# the comparison's files (one name each, used to write them and to list them)
SUMMARY_CSV, SUMMARY_JSON, CURVES_CSV, RANKS_CSV, CD_PLOT = (
    "summary.csv",
    "summary.json",
    "curves.csv",
    "ranks.csv",
    "cd.png",
)

SUMMARY_COLUMNS = (
    "dataset",
    "split",
    "rank",
    "variant",
    "repeats",
    "loss",
    "loss_ci_low",
    "loss_ci_high",
    "accuracy",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "auc_val_loss",
    "epochs_to_threshold",
    "threshold_reached",
    "epochs",
    "p_value",
    "p_holm",
    "seconds_per_run",
)


def write_outputs(out: Path, summary: dict[str, Any], results: Results) -> list[str]:
    """Write every summary file; returns their names (for the closing message)."""
    written = [SUMMARY_CSV, SUMMARY_JSON, CURVES_CSV]
    _write_curves(out, results)
    rows = [_summary_row(dataset, row) for dataset in summary["datasets"] for row in dataset["variants"]]
    write_csv(out / SUMMARY_CSV, SUMMARY_COLUMNS, rows)
    write_json(out / SUMMARY_JSON, summary)
    several = len(summary["datasets"]) > 1
    for dataset in summary["datasets"]:
        name = dataset["dataset"]
        plot = f"compare-{slug(name)}.png" if several else "compare.png"
        epochs = dataset["epochs"]
        title = f"{name}: {len(results[name])} variants x {summary['repeats']} repeats, {_epochs_text(epochs)} epochs"
        plot_comparison(_plot_curves(results[name]), out / plot, title)
        written.append(plot)
    across = summary["across_datasets"]
    if across is not None:
        _write_ranks(out, across)
        plot_critical_difference(
            across["average_ranks"],
            across["cliques"],
            out / CD_PLOT,
            f"average rank over {len(across['datasets'])} datasets (final {summary['metric']})",
            note=f"bars: not significantly different (pairwise Wilcoxon signed-rank, Holm, alpha {ALPHA:g})",
        )
        written += [RANKS_CSV, CD_PLOT]
    return written


def _epochs_text(epochs) -> str:
    values = epochs if isinstance(epochs, list) else [epochs]
    return "/".join(f"{value:g}" for value in values)


def _write_curves(out: Path, results: Results) -> None:
    rows = []
    for dataset, variants in results.items():
        for variant, records in variants.items():
            for record in records:
                history = record["history"]
                for i, epoch in enumerate(history["epoch"]):
                    rows.append(
                        (
                            dataset,
                            variant,
                            record["repeat"],
                            epoch,
                            history["loss"][i],
                            history["accuracy"][i],
                            _nan(history["val_loss"][i]),
                            _nan(history["val_accuracy"][i]),
                        )
                    )
    columns = ("dataset", "variant", "repeat", "epoch", "loss", "accuracy", "val_loss", "val_accuracy")
    write_csv(out / CURVES_CSV, columns, rows)


def _summary_row(dataset: dict[str, Any], row: dict[str, Any]) -> tuple:
    return (
        dataset["dataset"],
        dataset["split"],
        row["rank"],
        row["variant"],
        row["repeats"],
        row["loss"],
        *row["loss_ci"],
        row["accuracy"],
        *row["accuracy_ci"],
        row["auc_val_loss"],
        _nan(row["epochs_to_threshold"]),
        row["threshold_reached"],
        row["epochs"],
        _nan(row["p_value"]),
        _nan(row["p_holm"]),
        row["seconds_per_run"],
    )


def _write_ranks(out: Path, across: dict[str, Any]) -> None:
    datasets = across["datasets"]
    rows = [
        (name, rank, *(across["ranks"][dataset][name] for dataset in datasets))
        for name, rank in across["average_ranks"].items()
    ]
    write_csv(out / RANKS_CSV, ("variant", "average_rank", *(f"rank_{d}" for d in datasets)), rows)


def _nan(value) -> float:
    return math.nan if value is None else float(value)


def _plot_curves(results: dict[str, list[dict]]) -> dict[str, dict[str, Any]]:
    """Per variant: each repeat's training loss, and the mean validation loss with a 95% band at
    the epochs every repeat logged (runs stopped early end sooner)."""
    curves = {}
    for variant, records in results.items():
        points = [dict(zip(*validation_curve(r)[:2])) for r in records]
        shared = sorted(set.intersection(*(set(p) for p in points)))
        intervals = [mean_interval([p[epoch] for p in points]) for epoch in shared]
        curves[variant] = {
            "train": [(np.array(r["history"]["epoch"]), np.array(r["history"]["loss"])) for r in records],
            "val_epochs": np.array(shared),
            "val_mean": np.array([i.mean for i in intervals]),
            "val_low": np.array([i.low for i in intervals]),
            "val_high": np.array([i.high for i in intervals]),
        }
    return curves
