"""Training progress: a live table and progress bar on a terminal, plain lines, or JSON."""

from __future__ import annotations

import math

from rich.console import Console, Group
from rich.live import Live
from rich.progress import Progress
from rich.table import Table

from .console import emit_json, number, progress_bar, seconds, stderr_console

ROWS_SHOWN = 20  # a table for people: about this many rows, however often the run logs


class EpochReporter:
    """Shows training progress: rows of logged epochs, about ``ROWS_SHOWN`` of them.

    Modes: ``rich`` (a TTY: live table plus a progress bar with ETA), ``plain`` (pipes, CI,
    log files: one aligned line per row, no redraws, the ETA in a column), ``json`` (one JSON
    object per logged epoch on stdout, every one of them) and ``quiet`` (nothing). The last
    logged epoch is always shown, so a run that stops early ends with its last row.
    """

    COLUMNS = ("epoch", "loss", "accuracy", "val loss", "val accuracy", "lr", "elapsed")
    PLAIN_COLUMNS = (*COLUMNS, "eta")

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
        self._shown_every = max(1, total_epochs // ROWS_SHOWN)
        self._start_epoch = 0
        self._pending = None  # the last logged row, if it was not shown

    def set_total(self, total_epochs: int) -> None:
        """A new phase of ``total_epochs`` (the refit), before its :meth:`start`."""
        self.total = total_epochs
        self._shown_every = max(1, total_epochs // ROWS_SHOWN)
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
        self._start_epoch = start_epoch
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
        if self.mode == "json":
            emit_json({"event": "epoch", **vars(record)})
        elif record.epoch % self._shown_every == 0 or record.epoch == self.total:
            self._show(record)
        else:
            self._pending = record

    def _show(self, record) -> None:
        self._pending = None
        cells = (
            f"{record.epoch}",
            number(record.loss),
            number(record.accuracy),
            number(record.val_loss),
            number(record.val_accuracy),
            _rate(record.learning_rate),
            seconds(record.elapsed),
        )
        if self.mode == "rich" and self._table is not None:
            self._table.add_row(*cells)
        elif self.mode == "plain":
            if not self._header_printed:
                self.console.print("  ".join(f"{c:>12}" for c in self.PLAIN_COLUMNS))
                self._header_printed = True
            self.console.print("  ".join(f"{c:>12}" for c in (*cells, self._eta(record))))

    def _eta(self, record) -> str:
        """Time left at this pace to the last epoch (early stopping may end sooner)."""
        done = record.epoch - self._start_epoch
        if done <= 0 or record.epoch >= self.total:
            return "-"
        return seconds(record.elapsed / done * (self.total - record.epoch))

    def close(self) -> None:
        if self._pending is not None:  # the run ended between shown rows (early stopping, Ctrl-C)
            self._show(self._pending)
        if self._live is not None:
            if self._progress is not None:
                self._progress.update(self._task, visible=False)
            self._live.stop()
            self._live = None


def _rate(value: float) -> str:
    """A learning rate in 3 significant digits (``0.003``, ``0.000375``, ``1.5e-05``)."""
    return "-" if value is None or math.isnan(value) else f"{value:.3g}"
