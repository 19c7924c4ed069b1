"""``--dry-run``: the plan of a train run or a comparison and its estimated time, for people."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from .console import seconds


def print_dry_run(plan: dict[str, Any], console: Console) -> None:
    probe = plan["probe"]
    seed = "drawn when it starts" if plan["seed"] is None else str(plan["seed"])
    lines = ["dry run: nothing is trained or written"]
    if plan["command"] == "train":
        lines.append(f"run: {plan['variants'][0]} on {plan['datasets'][0]} -> {plan['out']}")
    elif plan["command"] == "tune":
        budget = [f"{plan['trials']} trials"] if plan["trials"] is not None else []
        budget += [f"at most {seconds(plan['timeout_seconds'])}"] if plan["timeout_seconds"] is not None else []
        lines += [
            f"search: {len(plan['space'])} dimension(s), {' or '.join(budget)}, sampler {plan['sampler']}, "
            f"pruner {plan['pruner']}, on {plan['datasets'][0]}",
            *(f"  {dimension}" for dimension in plan["space"]),
            f"each trial: about {seconds(plan['estimate_seconds_one_run'])} (the starting config, probed; other "
            "sizes differ, pruned trials stop sooner)",
            f"confirmation: {plan['confirm_runs']} runs (finalists and baseline x paired repeats), then the "
            "winner on all the training data",
        ]
    else:
        lines += [
            f"plan: {len(plan['datasets'])} dataset(s) x {len(plan['variants'])} variant(s) x {plan['repeats']} "
            f"paired repeat(s) = {plan['runs']} runs in {plan['jobs']} job(s), {plan['programs']} compiled "
            f"program(s), {plan['workers']} worker(s), executor {plan['executor']} -> {plan['out']}",
            f"  datasets: {', '.join(plan['datasets'])}",
            f"  variants: {', '.join(plan['variants'])}",
        ]
    stopping = ", early stopping: may end sooner" if plan["early_stopping"] else ""
    if plan.get("folds"):
        stopping += f"; each run a {plan['folds']}-fold ensemble ({plan['folds']} models in its program)"
    lines += [
        f"{plan['backend']} on {plan['device']} (XLA {'on' if plan['xla'] else 'off'}), seed {seed}",
        f"{plan['epochs']} epochs x {plan['steps_per_epoch']} step(s) of batch {plan['batch_size']}, "
        f"validation every {plan['log_every']} epoch(s){stopping}",
        f"probe: compile {seconds(probe['compile_seconds'])}, {_epochs(probe['epochs'])} of {probe['runs']} run(s) "
        f"in {seconds(probe['seconds'])}",
        f"estimated time: {seconds(plan['estimate_seconds'])} (compiles and training, scaled from the probe; "
        "start-up and writing files not included)",
    ]
    if plan["command"] == "tune":
        lines[-1] += f"; search {seconds(plan['search_seconds'])}, confirmation {seconds(plan['confirm_seconds'])}"
    if plan.get("workers", 1) > 1:
        lines.append(f"  each of the {plan['workers']} worker processes also starts and imports the backend on its own")
    console.print("\n".join(lines), markup=False, highlight=False)
    console.print("config:", markup=False)
    console.print(plan["config"].rstrip(), markup=False, highlight=False)


def _epochs(count: float) -> str:
    """``3 epochs``, or ``0.012 of an epoch`` where the probe timed the first steps of a long one."""
    return f"{count:.3g} of an epoch" if count < 1 else f"{count:g} epochs"
