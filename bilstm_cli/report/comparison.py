"""A comparison's progress (one line per finished run) and its summary table and verdict."""

from __future__ import annotations

import math

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ..engine.history import validation_points
from ..stats.paired import ALPHA, MIN_REPEATS_FOR_TEST
from .console import number, progress_bar, seconds, stderr_console


class CompareReporter:
    """Progress of a comparison: one line per finished (variant, repeat) run."""

    def __init__(self, mode: str, console: Console | None = None):
        self.mode = mode
        self.console = console or stderr_console()
        self._progress: Progress | None = None
        self._task = None

    def message(self, text: str) -> None:
        if self.mode != "quiet":  # --json changes stdout only; people still read stderr
            (self._progress.console if self._progress else self.console).print(text)

    def start(self, total: int, done: int, workers: int, config) -> None:
        self.message(
            f"comparing {', '.join(config.compare.variants)}: {config.compare.repeats} paired repeats x "
            f"{config.train.epochs} epochs (seeds {config.train.seed}..{config.train.seed + config.compare.repeats - 1}"
            f"), {workers} worker(s)" + (f"; {done} of {total} runs already done" if done else "")
        )
        if self.mode == "rich":
            self._progress = progress_bar("runs", self.console)
            self._task = self._progress.add_task("compare", total=total, completed=done)
            self._progress.start()

    def on_result(self, record: dict) -> None:
        history = record["history"]
        logged = validation_points(history)
        last = logged[-1] if logged else -1
        self.message(
            f"{record['variant']:>24} repeat {record['repeat']:>2} (seed {record['seed']}): "
            f"val_loss {number(history['val_loss'][last])}  val_accuracy {number(history['val_accuracy'][last])}  "
            f"{seconds(record['seconds'])}"
        )
        if self._progress is not None:
            self._progress.advance(self._task)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _with_interval(mean: float, interval: list, digits: int = 4) -> str:
    low, high = interval
    if low is None or (isinstance(low, float) and math.isnan(low)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}"


def print_compare_summary(summary: dict, console: Console, wall_seconds: float | None = None) -> None:
    repeats = summary["repeats"]
    title = f"{len(summary['variants'])} variants x {repeats} paired repeats x {summary['epochs']} epochs" + (
        f" ({seconds(wall_seconds)})" if wall_seconds is not None else ""
    )
    threshold = summary["accuracy_threshold"]
    table = Table(
        "rank",
        "variant",
        "val loss",
        "val accuracy",
        "val loss AUC",
        f"epochs to {threshold:g}",
        "p vs best",
        title=title,
        title_justify="left",
    )
    for column in table.columns[2:]:
        column.justify = "right"
    for row in summary["variants"]:
        reached = row["threshold_reached"]
        epochs = row["epochs_to_threshold"]
        count = f"({reached}/{row['repeats']})"
        speed = f"{epochs:g} {count}" if epochs is not None else f"not reached {count}"
        if row["p_holm"] is None:
            p_text = "best" if row["rank"] == 1 else "-"
        else:
            p_text = f"{row['p_holm']:.3g}" + (" *" if row["p_holm"] < ALPHA else "")
        table.add_row(
            str(row["rank"]),
            row["variant"],
            _with_interval(row["val_loss"], row["val_loss_ci"]),
            _with_interval(row["val_accuracy"], row["val_accuracy_ci"]),
            _with_interval(row["auc_val_loss"], row["auc_val_loss_ci"]),
            speed,
            p_text,
        )
    console.print(table)
    notes = [
        "val loss / accuracy: final validation scores; ± is the half-width of the 95% t confidence interval"
        if repeats > 1
        else "one repeat: no confidence intervals and no test",
        "val loss AUC: mean validation loss over training (lower = learns faster)",
        f"epochs to {threshold:g}: median epochs to reach that validation accuracy (runs that never do count as never)",
        f"p vs best: paired Wilcoxon signed-rank test on final validation loss, Holm-adjusted; * = p < {ALPHA:g}",
    ]
    if summary["underpowered"] and repeats > 1:
        notes.append(
            f"with {repeats} repeats the Wilcoxon test is underpowered "
            f"(needs {MIN_REPEATS_FOR_TEST}+ to reach p < {ALPHA:g})"
        )
    for note in notes:
        console.print(f"[dim]{note}[/dim]")
    console.print(f"verdict: {summary['verdict']}")
