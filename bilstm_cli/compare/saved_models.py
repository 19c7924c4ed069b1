"""The models a comparison keeps (``compare.save_models``): each a train run directory under
``models/<dataset>/<variant>/`` (``best``: the best repeat so far) or
``models/<dataset>/<variant>/repeat-NNN/`` (``all``), with the files ``bilstm evaluate``,
``predict`` and ``export`` read (``model.keras``, ``config.yaml``, ``data.json``) and those a
train run has besides (``metrics.json``, ``history.csv``, the ``.bilstm-run`` marker).

Only the driver writes them, from the records the workers send; each folder is built beside
its place and renamed into it, so a folder is always a whole run (``best`` replaces one).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..engine.history import History
from ..fileio import atomic
from ..fileio.files import write_csv, write_json
from ..runs import directory
from .plan import slug

MODELS = "models"
ORIGIN = "compare.json"  # which comparison run a kept model is: dataset, variant, repeat, seed, score


def model_directory(out: Path, dataset: str, variant: str, repeat: int | None = None) -> Path:
    """Where a kept model goes (``repeat`` None: the variant's best)."""
    folder = out / MODELS / slug(dataset) / slug(variant)
    return folder if repeat is None else folder / f"repeat-{repeat:03d}"


def keep_model(out: Path, record: dict, saved: dict, mode: str, metric: str) -> Path | None:
    """Write ``record``'s model as ``mode`` says (``all``, or ``best``: only when it beats the
    variant's kept one on ``metric``; ties keep the lower repeat). The folder written, or None."""
    dataset, variant, repeat = record["dataset"], record["variant"], record["repeat"]
    score = (record.get("final") or {}).get(metric)
    if mode == "all":
        target = model_directory(out, dataset, variant, repeat)
        if target.exists():  # resume trains a program again: a kept model stays as it was
            return None
    else:
        target = model_directory(out, dataset, variant)
        if not _better(score, repeat, _origin(target), higher=metric == "accuracy"):
            return None
    origin = {"dataset": dataset, "variant": variant, "repeat": repeat, "seed": record["seed"]}
    origin.update({"metric": metric, "score": score, "split": (record.get("final") or {}).get("split")})
    _write_run(target, record, saved, origin)
    return target


def _better(score, repeat: int, kept: dict | None, higher: bool) -> bool:
    if kept is None:
        return True
    previous = kept.get("score")
    if _missing(score) or _missing(previous):
        return not _missing(score)
    if score == previous:
        return repeat < kept.get("repeat", math.inf)
    return score > previous if higher else score < previous


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _origin(folder: Path) -> dict | None:
    try:
        return json.loads((folder / ORIGIN).read_text())
    except (OSError, ValueError):
        return None


def _write_run(target: Path, record: dict, saved: dict, origin: dict) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = atomic.staging_directory(target)
    atomic.write_text(staging / directory.MARKER, directory.MARKER_TEXT)
    atomic.write_text(staging / directory.CONFIG, saved["config"])
    atomic.write_bytes(staging / directory.MODEL, saved["model"])
    write_json(staging / directory.DATA_SPEC, saved["data"])
    write_json(staging / directory.METRICS, saved["metrics"])
    history = History.from_dict(record["history"])
    write_csv(staging / directory.HISTORY, History.COLUMNS, history.rows())
    write_json(staging / ORIGIN, origin)
    atomic.replace_directory(staging, target)
