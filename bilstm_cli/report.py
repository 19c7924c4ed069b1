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
    return Console(highlight=False, soft_wrap=True)


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
        if self.mode in ("rich", "plain"):
            (self._progress.console if self._progress else self.console).print(text)

    def start(self, start_epoch: int = 0) -> None:
        if self.mode != "rich":
            return
        self._table = Table(*self.COLUMNS, title=self.title or None, title_justify="left")
        for column in self._table.columns[1:]:
            column.justify = "right"
        self._progress = Progress(
            TextColumn("epoch {task.completed}/{task.total}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
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
