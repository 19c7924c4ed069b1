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

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..fileio.jsonable import jsonable


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


class _StdoutConsole(Console):
    def on_broken_pipe(self) -> None:
        # Rich exits 1 here; the reader leaving (`| head`) is not our failure: cli.py exits 0
        raise BrokenPipeError


def stdout_console() -> Console:
    # tables are this stream's product: in a pipe or file, do not squeeze them to 80 columns
    return _StdoutConsole(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 120 else f"{value / 60:.1f}min"


def emit_json(data: Any) -> None:
    """One JSON object per line on stdout (NaN becomes null)."""
    sys.stdout.write(json.dumps(jsonable(data), separators=(",", ":")) + "\n")
    sys.stdout.flush()


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
