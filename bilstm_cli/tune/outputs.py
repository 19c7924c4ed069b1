"""The files of a tune directory besides the study: trials.csv, the held-out split, plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..data.block_writer import write_blocks
from ..data.io import read_dataset, write_dataset
from ..data.prepare import stratified_split
from ..data.streamed import open_large_file, split_chunks
from ..fileio.files import write_csv

TRIALS_CSV = "trials.csv"
SUMMARY = "summary.json"
BEST_YAML = "best.yaml"
BEST_RUN = "best-run"
CONFIRM = "confirm"
HOLDOUT = "holdout"
SEARCH_TRAIN = "search-train.npz"
HELD_OUT = "held-out.npz"
HISTORY_PLOT = "optimization-history.png"
IMPORTANCE_PLOT = "param-importances.png"


def trial_rows(study) -> list[dict[str, Any]]:
    """One row per trial, in number order, with the best score so far."""
    higher = study.direction.name == "MAXIMIZE"
    rows, best = [], None
    for trial in study.get_trials(deepcopy=False):
        state = trial.state.name.lower()
        value = trial.value if state == "complete" else None
        if value is not None and (best is None or (value > best if higher else value < best)):
            best = value
        intermediate = trial.intermediate_values
        last = intermediate[max(intermediate)] if intermediate else None
        rows.append(
            {
                "number": trial.number,
                "state": state,
                "score": value if value is not None else last,
                "best_so_far": best,
                "epochs": trial.user_attrs.get("epochs_run"),
                "seconds": trial.user_attrs.get("seconds"),
                "params": json.dumps(trial.params, sort_keys=True),
                "note": trial.user_attrs.get("error") or ("stale: retried" if trial.user_attrs.get("stale") else ""),
            }
        )
    return rows


def write_trials(folder: Path, study) -> None:
    rows = trial_rows(study)
    columns = ("number", "state", "score", "best_so_far", "epochs", "seconds", "params", "note")
    write_csv(folder / TRIALS_CSV, columns, [tuple(row[c] for c in columns) for row in rows])


def held_out_split(folder: Path, train_path: str, fraction: float, seed: int, memory_limit: int) -> tuple[str, str]:
    """Split a training file (no test file given) into the search's part and a held-out part,
    once, before the search starts; later calls (resume) find the files written.

    A file larger than ``memory_limit`` is split by whole chunks (see ``split_chunks``), copied
    a chunk at a time into two Parquet files."""
    target = folder / HOLDOUT
    for suffix in (".npz", ".parquet"):
        search, held = (target / SEARCH_TRAIN).with_suffix(suffix), (target / HELD_OUT).with_suffix(suffix)
        if search.exists() and held.exists():
            return str(search), str(held)
    target.mkdir(exist_ok=True)
    streamed = open_large_file(train_path, None, memory_limit)
    if streamed is None:
        search, held = target / SEARCH_TRAIN, target / HELD_OUT
        kept, held_out = stratified_split(read_dataset(train_path), fraction, seed)
        write_dataset(held_out, str(held))
        write_dataset(kept, str(search))
        return str(search), str(held)
    search, held = (target / SEARCH_TRAIN).with_suffix(".parquet"), (target / HELD_OUT).with_suffix(".parquet")
    kept, held_out = split_chunks(streamed, fraction, seed, "tune.holdout")
    write_blocks((streamed.read(index) for index in held_out), str(held), "parquet")
    write_blocks((streamed.read(index) for index in kept), str(search), "parquet")
    return str(search), str(held)


def write_plots(folder: Path, study) -> list[str]:
    """Optuna's optimisation history and parameter importances (matplotlib), where they apply."""
    written = []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as views
    except ImportError:
        return written
    import warnings

    views_to_draw = ((HISTORY_PLOT, views.plot_optimization_history), (IMPORTANCE_PLOT, views.plot_param_importances))
    for name, draw in views_to_draw:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw(study)
                axes.figure.tight_layout()
                axes.figure.savefig(folder / name, dpi=100)
            plt.close("all")
            written.append(name)
        except Exception:  # noqa: BLE001 - importances need 2+ complete trials and 2+ parameters' spread
            plt.close("all")
    return written
