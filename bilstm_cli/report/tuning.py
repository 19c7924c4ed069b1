"""``bilstm tune`` for people: the live table of trials (plain lines when piped), JSON lines,
and the confirmation's table with its verdict."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from .console import emit_json, number, seconds, stderr_console

SHOWN = 15  # trials the live table keeps on screen


def params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{key.rsplit('.', 1)[-1]}={_value(value)}" for key, value in params.items())


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


class TuneReporter:
    """Modes as :class:`~bilstm_cli.report.training.EpochReporter`'s: rich (a live table of the
    latest trials), plain (one line per trial), json (one object per trial on stdout), quiet."""

    def __init__(self, mode: str, console: Console | None = None):
        self.mode = mode
        self.console = console or stderr_console()
        self._live: Live | None = None
        self._rows: list[dict] = []

    def message(self, text: str) -> None:
        if self.mode != "quiet":
            (self._live.console if self._live else self.console).print(text)

    def start(self, info: dict) -> None:
        budget = [f"{info['trials']} trials"] if info["trials"] is not None else []
        if info["timeout"] is not None:
            budget.append(f"{seconds(info['timeout'])}")
        self.message(
            f"search: {len(info['keys'])} dimension(s), {' or '.join(budget)}, sampler {info['sampler']}, "
            f"pruner {info['pruner']}, validation {info['metric']}, search seed {info['seed']} -> {info['folder']}"
            + (f"; {info['done']} trials already finished" if info["done"] else "")
        )
        for key, spec in zip(info["keys"], info["dimensions"]):
            self.message(f"  {key}: {spec}")
        if info["stale"]:
            self.message(f"  trials left running by the stopped search: {info['stale']} (marked failed, run again)")
        if self.mode == "rich":
            self._live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
            self._live.start()

    def trial_started(self, number: int, params: dict) -> None:
        if self._live is not None:
            self._live.update(self._table(running=(number, params)))

    def trial_finished(self, row: dict) -> None:
        if self.mode == "json":
            emit_json({"event": "trial", **row})
            return
        self._rows.append(row)
        if self._live is not None:
            self._live.update(self._table())
        elif self.mode == "plain":
            self.console.print(self._line(row))

    def _line(self, row: dict) -> str:
        best = row["best"]
        best_text = f"best {number(best['score'])} (trial {best['number']})" if best else "best -"
        note = f"  {row['note']}" if row.get("note") else ""
        return (
            f"trial {row['number']:>3}  {params_text(row['params'])}  {row['state']:<8} "
            f"score {number(row['score'])}  {row['epochs']} epochs  {seconds(row['seconds'])}  {best_text}{note}"
        )

    def _table(self, running: tuple[int, dict] | None = None) -> Table:
        table = Table("trial", "params", "state", "score", "epochs", "time", "best so far", title="trials")
        for row in self._rows[-SHOWN:]:
            best = row["best"]
            table.add_row(
                str(row["number"]),
                params_text(row["params"]),
                row["state"],
                number(row["score"]),
                str(row["epochs"]),
                seconds(row["seconds"]),
                f"{number(best['score'])} (#{best['number']})" if best else "-",
            )
        if running is not None:
            table.add_row(str(running[0]), params_text(running[1]), "running", "", "", "", "")
        return table

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def print_tune_summary(summary: dict, console: Console, wall_seconds: float | None = None) -> None:
    """The finalists beside the baseline: search score, confirmed score, optimism, the paired
    difference and its test; then the verdict and the winner."""
    judgement = summary["confirmation"]
    if judgement is None:
        for finalist in summary["finalists"]:
            score = number(finalist["search_score"])
            console.print(f"{finalist['name']}: {params_text(finalist['params'])}  search score {score}")
    else:
        split = judgement["rows"][0]["split"]
        params = {f["name"]: f["params"] for f in summary["finalists"]}
        title = (
            f"confirmation: {len(judgement['rows'])} configs x {judgement['repeats']} paired repeats, fresh seeds, "
            f"{summary['metric']} on held-out {split} data"
        )
        table = Table(
            "config", "params", "search", "confirmed", "optimism", "vs baseline", "p (Holm)", "verdict", title=title
        )
        for row in judgement["rows"]:
            table.add_row(
                row["variant"],
                params_text(params.get(row["variant"], {})) or "(starting config)",
                number(row["search_score"]),
                _interval(row["confirmed"], row["confirmed_ci"]),
                number(row.get("optimism")),
                _interval(row["difference"], row["difference_ci"]) if "difference" in row else "-",
                "-" if row.get("p_holm") is None else f"{row['p_holm']:.3g}",
                row.get("verdict", "baseline"),
            )
        console.print(table)
    console.print(f"verdict: {summary['verdict']}")
    winner = summary["winner"]
    took = f" (search, confirmation and best run: {seconds(wall_seconds)})" if wall_seconds is not None else ""
    console.print(f"winner: {winner['name']} {params_text(winner['params'])}".rstrip() + took)


def _interval(mean: float, interval: list) -> str:
    low, high = interval
    if low is None or (isinstance(low, float) and math.isnan(low)):
        return number(mean)
    return f"{number(mean)} ± {(high - low) / 2:.4f}"
