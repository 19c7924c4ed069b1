"""A comparison's files: curves.csv, summary.csv, summary.json and compare.png (atomic writes)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..config.schema import Config
from ..report.plots import plot_comparison
from ..runs.files import write_csv, write_json
from ..stats.paired import mean_interval
from .summary import validation_curve


def write_outputs(out: Path, summary: dict[str, Any], results: dict[str, list[dict]], config: Config) -> None:
    """curves.csv, summary.csv, summary.json and compare.png (all written atomically)."""
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
    write_csv(
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
    write_csv(out / "summary.csv", columns, summary_rows)
    write_json(out / "summary.json", summary)
    plot_comparison(
        _plot_curves(results),
        out / "compare.png",
        f"{len(results)} variants x {summary['repeats']} repeats, {summary['epochs']} epochs",
    )


def _nan(value) -> float:
    return math.nan if value is None else float(value)


def _plot_curves(results: dict[str, list[dict]]) -> dict[str, dict[str, np.ndarray]]:
    curves = {}
    for variant, records in results.items():
        val_epochs = validation_curve(records[0])[0]
        val = np.array([validation_curve(r)[1] for r in records])
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
