"""Terminal output: Rich tables and progress on a TTY, plain lines elsewhere, JSON for pipelines.

Human-facing text goes to stderr; stdout carries only a command's product (JSON, CSV, the
evaluate/compare tables). Rich honours ``NO_COLOR`` and drops ANSI codes when the stream is
not a terminal; live redraws (progress bars) are only used on a terminal.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    # tables are this stream's product: in a pipe or file, do not squeeze them to 80 columns
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 120 else f"{value / 60:.1f}min"


def emit_json(data: Any) -> None:
    """One JSON object per line on stdout (NaN becomes null)."""
    sys.stdout.write(json.dumps(_json_safe(data), separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _json_safe(value.item())
    return value


def progress_bar(unit: str, console: Console) -> Progress:
    """A bar with 'UNIT done/total', percentage, elapsed time and ETA (terminals only)."""
    return Progress(
        TextColumn(unit + " {task.completed}/{task.total}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


class EpochReporter:
    """Shows training progress: one row per logged epoch.

    Modes: ``rich`` (a TTY: live table plus a progress bar with ETA), ``plain`` (pipes, CI,
    log files: one aligned line per row, no redraws), ``json`` (one JSON object per row on
    stdout) and ``quiet`` (nothing).
    """

    COLUMNS = ("epoch", "loss", "accuracy", "val loss", "val accuracy", "elapsed")

    def __init__(self, total_epochs: int, mode: str, console: Console | None = None, title: str = ""):
        self.total = total_epochs
        self.mode = mode
        self.console = console or stderr_console()
        self.title = title
        self._live: Live | None = None
        self._table: Table | None = None
        self._progress: Progress | None = None
        self._task = None
        self._header_printed = False

    @staticmethod
    def choose_mode(as_json: bool, quiet: bool, console: Console) -> str:
        if as_json:
            return "json"
        if quiet:
            return "quiet"
        return "rich" if console.is_terminal else "plain"

    def message(self, text: str) -> None:
        """A line for people (stderr), unless quiet or JSON output was asked for."""
        if self.mode != "quiet":  # --json changes stdout only; people still read stderr
            (self._progress.console if self._progress else self.console).print(text)

    def start(self, start_epoch: int = 0) -> None:
        if self.mode != "rich":
            return
        self._table = Table(*self.COLUMNS, title=self.title or None, title_justify="left")
        for column in self._table.columns[1:]:
            column.justify = "right"
        self._progress = progress_bar("epoch", self.console)
        self._task = self._progress.add_task("train", total=self.total, completed=start_epoch)
        self._live = Live(
            Group(self._table, self._progress), console=self.console, refresh_per_second=8, vertical_overflow="visible"
        )
        self._live.start()

    def on_progress(self, epoch: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=epoch)

    def on_log(self, record) -> None:
        cells = (
            f"{record.epoch}",
            number(record.loss),
            number(record.accuracy),
            number(record.val_loss),
            number(record.val_accuracy),
            seconds(record.elapsed),
        )
        if self.mode == "rich" and self._table is not None:
            self._table.add_row(*cells)
        elif self.mode == "plain":
            if not self._header_printed:
                self.console.print("  ".join(f"{c:>12}" for c in self.COLUMNS))
                self._header_printed = True
            self.console.print("  ".join(f"{c:>12}" for c in cells))
        elif self.mode == "json":
            emit_json({"event": "epoch", **vars(record)})

    def close(self) -> None:
        if self._live is not None:
            if self._progress is not None:
                self._progress.update(self._task, visible=False)
            self._live.stop()
            self._live = None


def print_evaluation(result, console: Console) -> None:
    """The evaluate command's tables: summary, per-step accuracy, confusion, per-class, listing."""
    evaluation = result.evaluation
    summary = Table(title=f"evaluation of {result.model.run.model_path}", title_justify="left", show_header=False)
    summary.add_row("data", result.source + (f" (seed {result.seed})" if result.seed is not None else ""))
    summary.add_row("sequences / labelled positions", f"{evaluation.sequences} / {evaluation.positions}")
    summary.add_row("loss", number(evaluation.loss))
    summary.add_row("accuracy", number(evaluation.accuracy))
    summary.add_row("macro F1", number(evaluation.scores.macro_f1))
    console.print(summary)

    if evaluation.per_step_accuracy:
        values = evaluation.per_step_accuracy
        stride = max(1, math.ceil(len(values) / 20))  # long sequences: every k-th step
        title = "accuracy per time step" + (f" (every {stride}th step)" if stride > 1 else "")
        steps = Table("step", "accuracy", title=title, title_justify="left")
        for step in range(0, len(values), stride):
            steps.add_row(str(step), number(values[step], 3))
        console.print(steps)

    names = evaluation.classes
    confusion = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
    confusion.add_column("")
    for name in names:
        confusion.add_column(name, justify="right")
    for name, row in zip(names, evaluation.confusion):
        confusion.add_row(name, *(str(v) for v in row))
    console.print(confusion)

    scores = evaluation.scores
    per_class = Table("class", "precision", "recall", "F1", "support", title="per class", title_justify="left")
    for i, name in enumerate(names):
        per_class.add_row(
            name,
            number(scores.precision[i], 3),
            number(scores.recall[i], 3),
            number(scores.f1[i], 3),
            str(scores.support[i]),
        )
    console.print(per_class)

    for example in result.listing:
        expected, predicted = example["expected"], example["predicted"]
        wrong = sum(e != p for e, p in zip(expected, predicted))
        indent = " " * (len(str(example["sequence"])) + 9)
        console.print(f"sequence {example['sequence']}  Expected:  {_label_cells(expected, expected + predicted)}")
        console.print(f"{indent}  Predicted: {_label_cells(predicted, expected + predicted)}  ({wrong} wrong)")


def _label_cells(values: list, all_values: list, shown: int = 40) -> str:
    """Labels in aligned columns; long sequences are cut after ``shown`` steps."""
    width = max(len(str(v)) for v in all_values)
    text = " ".join(f"{v:>{width}}" for v in values[:shown])
    return text + (" ..." if len(values) > shown else "")


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
        logged = [i for i, v in enumerate(history["val_loss"]) if v is not None and v == v]
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
            p_text = f"{row['p_holm']:.3g}" + (" *" if row["p_holm"] < 0.05 else "")
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
        "p vs best: paired Wilcoxon signed-rank test on final validation loss, Holm-adjusted; * = p < 0.05",
    ]
    if summary["underpowered"] and repeats > 1:
        notes.append(f"with {repeats} repeats the Wilcoxon test is underpowered (needs 6+ to reach p < 0.05)")
    for note in notes:
        console.print(f"[dim]{note}[/dim]")
    console.print(f"verdict: {summary['verdict']}")
