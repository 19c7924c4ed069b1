"""``bilstm runs`` for people: the table of directories, one directory, two side by side."""

from __future__ import annotations

import json
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from ..runs.catalog import Difference, RunEntry, scores
from .console import number


def print_runs_table(entries: list[RunEntry], console: Console) -> None:
    table = Table("name", "kind", "model", "data", "backend", "epochs", "split", "loss", "accuracy", "date")
    for entry in entries:
        table.add_row(
            entry.name,
            entry.kind if entry.finished else f"{entry.kind} (unfinished)",
            entry.model or "-",
            entry.data or "-",
            entry.backend or "-",
            "-" if entry.epochs is None else str(entry.epochs),
            entry.split or "-",
            number(entry.loss),
            number(entry.accuracy),
            (entry.date or "-").replace("T", " ")[:16],
        )
    console.print(table)


def print_run(entry: RunEntry, console: Console) -> None:
    """A directory's row as a two-column table, its scores, then its config as YAML."""
    table = Table(title=entry.path, title_justify="left", show_header=False)
    for key, value in entry.to_dict().items():
        if key not in ("name", "path"):
            table.add_row(key, _cell(value))
    measured = scores(entry)
    shown = set(entry.to_dict()) | {"variant", "epochs_run"}  # already in the rows above
    for key, value in measured.items():
        if key not in shown:
            table.add_row(key, _cell(value))
    console.print(table)
    config = entry.details.get("config")
    if config:
        console.print("config.yaml:")
        console.print(yaml.safe_dump(config, sort_keys=False).rstrip(), markup=False, highlight=False)
    for dataset in (entry.details.get("summary") or {}).get("datasets") or []:
        console.print(f"verdict on {dataset.get('dataset')}: {dataset.get('verdict')}", markup=False)


def print_diff(a: RunEntry, b: RunEntry, found: list[Difference], equal: int, console: Console) -> None:
    if found:
        table = Table("", "key", a.path, b.path)
        for difference in found:
            table.add_row(difference.section, difference.key, _cell(difference.a), _cell(difference.b))
        console.print(table)
    console.print(f"{len(found)} difference(s); {equal} config key(s) equal")


def diff_json(a: RunEntry, b: RunEntry, found: list[Difference], equal: int) -> dict[str, Any]:
    return {
        "a": a.to_dict(),
        "b": b.to_dict(),
        "differences": [vars(difference) for difference in found],
        "equal_config_keys": equal,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)
