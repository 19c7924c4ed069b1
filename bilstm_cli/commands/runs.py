"""``bilstm runs``: what an output folder holds (list), one directory in full (show), two side
by side (diff). Reads files only: no backend, so it starts as fast as ``bilstm config``."""

from __future__ import annotations

from pathlib import Path

from ..config.schema import OutputConfig
from ..runs.catalog import Difference, RunEntry, differences, find_runs, read_entry, select


def run_runs_list(
    folder: str | None, filters: tuple[str, ...] = (), sort: str | None = None
) -> tuple[Path, list[RunEntry]]:
    """The directories in ``folder`` (default: ``output.root``, ``runs/``) that pass ``filters``,
    sorted by ``sort`` (default: date). A missing default folder is an empty list."""
    root = Path(folder) if folder else Path(OutputConfig().root)
    if folder is None and not root.exists():
        return root, []
    return root, select(find_runs(root), filters, sort or "date")


def run_runs_show(path: str) -> RunEntry:
    """One run, comparison or tune directory, with its config and scores in ``details``."""
    return read_entry(_existing(path))


def run_runs_diff(first: str, second: str) -> tuple[RunEntry, RunEntry, list[Difference], int]:
    """Two directories, their config and score differences, and the number of equal config keys."""
    a, b = read_entry(_existing(first)), read_entry(_existing(second))
    found, equal = differences(a, b)
    return a, b, found, equal


def _existing(path: str) -> Path:
    from ..errors import UsageError

    folder = Path(path)
    if not folder.is_dir():
        raise UsageError(f"no run directory at {path}", "list the runs with: bilstm runs")
    return folder
