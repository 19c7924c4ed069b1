"""A comparison for people: the plan, progress with an ETA (one line per finished run), the
per-dataset tables with their verdicts, and the ranks across datasets."""

from __future__ import annotations

import math
import time

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ..stats.paired import ALPHA, MIN_REPEATS_FOR_TEST
from .console import number, progress_bar, seconds, stderr_console


class CompareReporter:
    """Progress of a comparison: the plan first, then one line per finished run with an ETA."""

    def __init__(self, mode: str, console: Console | None = None):
        self.mode = mode
        self.console = console or stderr_console()
        self._progress: Progress | None = None
        self._task = None
        self._started = time.perf_counter()
        self._total = self._done = self._finished_here = 0

    def message(self, text: str) -> None:
        if self.mode != "quiet":  # --json changes stdout only; people still read stderr
            (self._progress.console if self._progress else self.console).print(text)

    def start(self, plan) -> None:
        """Print what will run: datasets x variants x repeats, jobs (= compiles), seeds."""
        self._total, self._done = plan.total, plan.done
        self._started = time.perf_counter()
        shape = (
            f"{_count(plan.datasets, 'dataset')} x {_count(plan.variants, 'variant')} x {plan.repeats} paired repeats"
        )
        self.message(
            f"plan: {shape} = {plan.total} runs in {plan.jobs} program(s), "
            f"seeds {plan.seeds[0]}..{plan.seeds[1]}, {plan.workers} worker(s), executor {plan.executor}"
            + (f"; {plan.done} already done" if plan.done else "")
        )
        self.message(f"  datasets: {', '.join(plan.datasets)}")
        self.message(f"  variants: {', '.join(plan.variants)}")
        if self.mode == "rich":
            self._progress = progress_bar("runs", self.console)
            self._task = self._progress.add_task("compare", total=plan.total, completed=plan.done)
            self._progress.start()

    def on_result(self, record: dict) -> None:
        self._done += 1
        self._finished_here += 1
        final = record["final"]
        where = f"{record['dataset']} / " if record.get("dataset") else ""
        self.message(
            f"[{self._done}/{self._total}{self._eta()}] {where}{record['variant']} repeat {record['repeat']} "
            f"(seed {record['seed']}): {final['split']} loss {number(final['loss'])}  "
            f"accuracy {number(final['accuracy'])}  {seconds(record['seconds'])}"
        )
        if self._progress is not None:
            self._progress.advance(self._task)

    def _eta(self) -> str:
        """Time left, estimated from this session's finished runs (the first ones include compiles)."""
        remaining = self._total - self._done
        if not remaining or not self._finished_here:
            return ""
        per_run = (time.perf_counter() - self._started) / self._finished_here
        return f", ETA {seconds(per_run * remaining)}"

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _stat(value) -> str:
    """A test statistic or p-value as text (``inf`` arrives as text: JSON has no infinity)."""
    return value if isinstance(value, str) else "-" if value is None else f"{value:.3g}"


def _count(names: list[str], noun: str) -> str:
    return f"{len(names)} {noun}{'s' if len(names) != 1 else ''}"


def _with_interval(mean: float, interval: list, digits: int = 4) -> str:
    low, high = interval
    if low is None or (isinstance(low, float) and math.isnan(low)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}"


def print_compare_summary(summary: dict, console: Console, wall_seconds: float | None = None) -> None:
    """One table per dataset, then (with several datasets) the ranks across them."""
    several = len(summary["datasets"]) > 1
    for dataset in summary["datasets"]:
        _print_dataset(dataset, summary, console, wall_seconds if not several else None, several)
    if summary["across_datasets"] is not None:
        _print_across(summary["across_datasets"], summary, console, wall_seconds)


def _print_dataset(dataset: dict, summary: dict, console: Console, wall_seconds, several: bool) -> None:
    repeats = summary["repeats"]
    split = dataset["split"]
    epochs = dataset["epochs"]
    epochs_text = f"{epochs:g}" if not isinstance(epochs, list) else "/".join(f"{e:g}" for e in epochs)
    title = (
        (f"{dataset['dataset']}: " if several or dataset["dataset"] != "generated" else "")
        + f"{len(dataset['variants'])} variants x {repeats} paired repeats x {epochs_text} epochs, "
        + (
            "scores out of fold (each ensemble member on the fold it did not train on)"
            if dataset.get("out_of_fold")
            else f"scores on the {split} split"
        )
        + (f" ({seconds(wall_seconds)})" if wall_seconds is not None else "")
    )
    threshold = summary["accuracy_threshold"]
    table = Table(
        "rank",
        "variant",
        f"{split} loss",
        f"{split} accuracy",
        "val loss AUC",
        f"epochs to {threshold:g}",
        "p vs best",
        title=title,
        title_justify="left",
    )
    for column in table.columns[2:]:
        column.justify = "right"
    for row in dataset["variants"]:
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
            _with_interval(row["loss"], row["loss_ci"]),
            _with_interval(row["accuracy"], row["accuracy_ci"]),
            _with_interval(row["auc_val_loss"], row["auc_val_loss_ci"]),
            speed,
            p_text,
        )
    console.print(table)
    metric = summary["metric"]
    notes = [
        f"{split} loss / accuracy: final scores "
        + ("out of fold" if dataset.get("out_of_fold") else f"on the {split} split")
        + "; ± is the half-width of the 95% t interval"
        if repeats > 1
        else "one repeat: no confidence intervals and no test",
        "val loss AUC: mean validation loss over training (lower = learns faster)",
        f"epochs to {threshold:g}: median epochs to reach that validation accuracy (runs that never do count as never)",
        f"p vs best: paired Wilcoxon signed-rank test on the final {split} {metric}, Holm-adjusted; * = p < {ALPHA:g}",
    ]
    if dataset["underpowered"] and repeats > 1:
        notes.append(
            f"with {repeats} repeats the Wilcoxon test is underpowered "
            f"(needs {MIN_REPEATS_FOR_TEST}+ to reach p < {ALPHA:g})"
        )
    for note in notes:
        console.print(f"[dim]{note}[/dim]")
    console.print(f"verdict{' on ' + dataset['dataset'] if several else ''}: {dataset['verdict']}")


def _print_across(across: dict, summary: dict, console: Console, wall_seconds) -> None:
    datasets = across["datasets"]
    metric = summary["metric"]
    title = f"ranks across {len(datasets)} datasets (final {metric}, 1 = best)" + (
        f" ({seconds(wall_seconds)})" if wall_seconds is not None else ""
    )
    table = Table("variant", "average rank", *datasets, title=title, title_justify="left")
    for column in table.columns[1:]:
        column.justify = "right"
    for name, rank in across["average_ranks"].items():
        cells = [f"{across['ranks'][d][name]:g} ({number(across['scores'][d][name], 3)})" for d in datasets]
        table.add_row(name, f"{rank:.2f}", *cells)
    console.print(table)
    friedman = across["friedman"]
    if friedman["reason"]:
        console.print(f"[dim]Friedman test not computed: {friedman['reason']}[/dim]")
    else:
        console.print(
            f"[dim]Friedman chi2 = {_stat(friedman['chi2'])} (p = {_stat(friedman['p_value'])}); Iman-Davenport "
            f"F({friedman['f_df'][0]}, {friedman['f_df'][1]}) = {_stat(friedman['iman_davenport_f'])} "
            f"(p = {_stat(friedman['f_p_value'])}); cells: rank (mean {metric}); splits: "
            + ", ".join(f"{d} {s}" for d, s in across["splits"].items())
            + "[/dim]"
        )
    if across["cliques"]:
        groups = "; ".join("{" + ", ".join(clique) + "}" for clique in across["cliques"])
        console.print(f"[dim]not significantly different (Wilcoxon-Holm, alpha {ALPHA:g}): {groups}[/dim]")
    console.print(f"verdict across datasets: {across['verdict']}")
