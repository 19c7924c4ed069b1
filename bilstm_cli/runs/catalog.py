"""What is in an output folder: its train runs, comparisons and tunes, read from their files.

Light on purpose (``bilstm runs`` must start fast): plain JSON and YAML, no backend, no
config validation (a run written by an older bilstm is still listed). A folder that cannot
be read as a run is not listed; a file that cannot be read leaves its fields empty.
"""

from __future__ import annotations

import fnmatch
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError
from .directory import CHECKPOINT, COMPARISON_CONFIGS, COMPARISON_SUMMARY, CONFIG, MARKER, METRICS, MODEL

TUNE_STUDY = "study.db"  # a tune directory's Optuna study (bilstm tune)
KINDS = ("train", "compare", "tune")


@dataclass
class RunEntry:
    """One row of ``bilstm runs``: a run, comparison or tune directory, summarised."""

    name: str
    path: str
    kind: str
    finished: bool
    model: str | None = None
    data: str | None = None
    backend: str | None = None
    epochs: int | None = None
    split: str | None = None  # the split loss and accuracy are on: validation or test
    loss: float | None = None
    accuracy: float | None = None
    date: str | None = None  # ISO local time of the directory's last config or result write
    details: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("details")
        return values


FIELDS = tuple(name for name in RunEntry.__dataclass_fields__ if name != "details")


def kind_of(folder: Path) -> str | None:
    """``train``, ``compare`` or ``tune`` for a directory bilstm made, else None."""
    if not (folder / CONFIG).is_file():
        return None
    if (folder / TUNE_STUDY).exists():
        return "tune"
    if (folder / COMPARISON_CONFIGS).is_dir():
        return "compare"
    if any((folder / name).exists() for name in (MARKER, METRICS, CHECKPOINT, MODEL)):
        return "train"
    return None


def find_runs(folder: Path) -> list[RunEntry]:
    """The run, comparison and tune directories directly in ``folder`` (or ``folder`` itself,
    when it is one)."""
    if not folder.is_dir():
        raise UsageError(f"no folder at {folder}", "give the folder that holds your runs (default: runs/)")
    if kind_of(folder):
        return [read_entry(folder, folder.name)]
    children = sorted(child for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))
    return [read_entry(child, child.name) for child in children if kind_of(child)]


def read_entry(folder: Path, name: str | None = None) -> RunEntry:
    """One directory's row (``folder`` must be a run, comparison or tune directory)."""
    kind = kind_of(folder)
    if kind is None:
        raise UsageError(
            f"{folder} is not a run, comparison or tune directory made by bilstm",
            f"list them with: bilstm runs {folder.parent}",
        )
    config = _read_yaml(folder / CONFIG)
    entry = RunEntry(name or folder.name, str(folder), kind, finished=False)
    entry.backend = _get(config, "train.backend")
    entry.epochs = _get(config, "train.epochs")
    entry.date = _date(folder)
    if kind == "train":
        _train_fields(entry, folder, config)
    elif kind == "compare":
        _compare_fields(entry, folder, config)
    else:
        entry.model = _model_name(_get(config, "model") or {})
        entry.data = _data_name(config)
        entry.finished = (folder / COMPARISON_SUMMARY).exists()
        entry.details = {"config": config, "summary": _read_json(folder / COMPARISON_SUMMARY)}
    return entry


def _train_fields(entry: RunEntry, folder: Path, config: dict) -> None:
    metrics = _read_json(folder / METRICS)
    entry.finished = bool(metrics) and (folder / MODEL).exists()
    entry.model = metrics.get("variant") or _model_name(_get(config, "model") or {})
    entry.data = _data_name(config)
    entry.details = {"config": config, "metrics": metrics}
    if not metrics:
        return
    entry.epochs = metrics.get("epochs_run", entry.epochs)
    entry.backend = metrics.get("backend", entry.backend)
    final = metrics.get("final") or {}
    split = "test" if final.get("test_loss") is not None else "validation"
    prefix = "test_" if split == "test" else "val_"
    entry.split, entry.loss, entry.accuracy = split, final.get(f"{prefix}loss"), final.get(f"{prefix}accuracy")


def _compare_fields(entry: RunEntry, folder: Path, config: dict) -> None:
    summary = _read_json(folder / COMPARISON_SUMMARY)
    variants = _get(config, "compare.variants") or []
    datasets = [d.get("name") for d in (_get(config, "compare.datasets") or []) if isinstance(d, dict)]
    entry.data = ", ".join(name for name in datasets if name) or _data_name(config)
    entry.finished = bool(summary)
    entry.details = {"config": config, "summary": summary}
    count = len(variants)
    entry.model = f"{count} variant{'s' if count != 1 else ''}"
    per_dataset = summary.get("datasets") or []
    across = summary.get("across_datasets")
    if across and across.get("best"):
        entry.model = f"{across['best']} (best rank of {count})"
    elif len(per_dataset) == 1 and per_dataset[0].get("best"):
        best = per_dataset[0]["best"]
        entry.model = f"{best} (best of {count})"
        row = next((row for row in per_dataset[0].get("variants", []) if row.get("variant") == best), {})
        entry.split, entry.loss, entry.accuracy = per_dataset[0].get("split"), row.get("loss"), row.get("accuracy")


def select(entries: list[RunEntry], filters: tuple[str, ...] = (), sort: str | None = None) -> list[RunEntry]:
    """The entries that pass every ``KEY=PATTERN`` filter (shell wildcards; ``finished=true``),
    sorted by ``sort`` (a field; missing values last; ``-KEY`` for descending)."""
    for text in filters:
        key, sep, pattern = text.partition("=")
        key = key.strip()
        if not sep or key not in FIELDS:
            raise UsageError(
                f"--filter {text!r}: expected KEY=VALUE with KEY one of {', '.join(FIELDS)}",
                "e.g. --filter kind=train --filter model='bilstm-*'",
            )
        entries = [entry for entry in entries if fnmatch.fnmatchcase(_text(getattr(entry, key)), pattern.strip())]
    if sort:
        key = sort.lstrip("-")
        if key not in FIELDS:
            raise UsageError(f"--sort {sort!r}: not a field", f"sort by one of {', '.join(FIELDS)} (-KEY: descending)")
        present = [entry for entry in entries if getattr(entry, key) is not None]
        missing = [entry for entry in entries if getattr(entry, key) is None]
        present.sort(key=lambda entry: getattr(entry, key), reverse=sort.startswith("-"))
        entries = present + missing
    return entries


# ---------------------------------------------------------------------------- helpers


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def _get(config: dict, path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _model_name(model: dict) -> str | None:
    """The variant name (``bilstm-concat``, ``gru-forward``) of a saved model section."""
    if not model:
        return None
    from ..config.schema import ModelSettings
    from ..config.variants import model_variant_name

    try:
        return model_variant_name(ModelSettings(**model))
    except Exception:  # noqa: BLE001 - an older or edited config: show what it says
        return str(model.get("kind") or "?")


def _data_name(config: dict) -> str:
    path = _get(config, "data.train_path")
    if path:
        return Path(path).name if path != "-" else "stdin"
    return "stdin" if _get(config, "data.stdin") else "generated"


def _date(folder: Path) -> str | None:
    stamps = [
        (folder / name).stat().st_mtime for name in (METRICS, COMPARISON_SUMMARY, CONFIG) if (folder / name).exists()
    ]
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(max(stamps))) if stamps else None


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _read_yaml(path: Path) -> dict:
    try:
        value = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------------------- show and diff


def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"epochs": 5}}`` -> ``{"train.epochs": 5}`` (lists stay values)."""
    if not isinstance(values, dict) or (prefix and not values):
        return {prefix: values} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def scores(entry: RunEntry) -> dict[str, Any]:
    """What a directory measured, flat: a run's metrics (without the layer list and library
    versions), a comparison's mean scores per dataset and variant."""
    if entry.kind == "train":
        metrics = dict(entry.details.get("metrics") or {})
        for noisy in ("model", "versions"):
            metrics.pop(noisy, None)
        if isinstance(metrics.get("device"), dict):
            metrics["device"] = {k: v for k, v in metrics["device"].items() if k != "names"}
        folds = metrics.get("folds")
        if isinstance(folds, dict) and isinstance(folds.get("members"), list):  # folds.fold0.best_epoch...
            members = {f"fold{i}": member for i, member in enumerate(folds["members"]) if isinstance(member, dict)}
            metrics["folds"] = {**{k: v for k, v in folds.items() if k != "members"}, **members}
        return flatten(metrics)
    flat: dict[str, Any] = {}
    for dataset in (entry.details.get("summary") or {}).get("datasets") or []:
        for row in dataset.get("variants") or []:
            for key in ("loss", "accuracy", "auc_val_loss", "epochs_to_threshold", "epochs"):
                flat[f"{dataset.get('dataset')} / {row.get('variant')}: {key}"] = row.get(key)
        flat[f"{dataset.get('dataset')}: best"] = dataset.get("best")
    return flat


@dataclass
class Difference:
    section: str  # "config" or "scores"
    key: str
    a: Any
    b: Any


def differences(a: RunEntry, b: RunEntry) -> tuple[list[Difference], int]:
    """The config keys and scores where two directories differ (keys that only one has count
    as different), and how many config keys are equal."""
    found: list[Difference] = []
    equal = 0
    for section, left, right in (
        ("config", flatten(a.details.get("config") or {}), flatten(b.details.get("config") or {})),
        ("scores", scores(a), scores(b)),
    ):
        for key in list(left) + [key for key in right if key not in left]:
            if left.get(key) != right.get(key) or (key in left) != (key in right):
                found.append(Difference(section, key, left.get(key), right.get(key)))
            elif section == "config":
                equal += 1
    return found, equal
