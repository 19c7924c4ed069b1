"""Command-line flags as config key paths, and what ``--resume`` may not change.

Dedicated flags (``--merge``, ``--epochs``...) are one more layer of the config (see
:func:`~bilstm_cli.config.resolve.resolve_config`); this module holds the rules that map them
onto key paths, so the Click layer only collects values.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError

CLEAR = object()  # a flag value meaning "set this key to null"

MODEL_FLAGS = ("kind", "direction", "merge", "units", "layers", "dropout", "cell")
TRAIN_FLAGS = ("epochs", "batch_size", "learning_rate", "optimizer", "schedule", "seed", "backend", "device", "devices")
# Flags that change what a run computes: refused with --resume, which reuses the saved config.
EXPERIMENT_FLAGS = (
    *MODEL_FLAGS,
    *("epochs", "batch_size", "learning_rate", "optimizer", "schedule", "early_stopping", "patience"),
    *("seed", "backend", "devices"),
)


def model_flags(
    kind: str | None = None,
    direction: str | None = None,
    merge: str | None = None,
    units: int | None = None,
    layers: int | None = None,
    dropout: float | None = None,
    cell: str | None = None,
) -> dict[str, Any]:
    """Dedicated model flags as config paths; ``--merge`` / ``--direction`` imply the kind."""
    # each flag implies a kind: two that disagree would silently train only one of them
    implied = [(f"--merge {merge}", "bilstm")] if merge is not None else []
    implied += [(f"--direction {direction}", "lstm")] if direction is not None else []
    implied += [(f"--kind {kind}", kind)] if kind is not None else []
    if len({wanted for _, wanted in implied}) > 1:
        raise UsageError(
            f"{' and '.join(flag for flag, _ in implied)} contradict each other: "
            "--merge is for a BiLSTM, --direction for a one-way LSTM",
            "give --merge for a BiLSTM or --direction for an LSTM, not both",
        )
    flags: dict[str, Any] = {
        "model.units": units,
        "model.layers": layers,
        "model.dropout": dropout,
        "model.cell": cell,
    }
    if merge is not None:
        flags.update({"model.kind": "bilstm", "model.merge": merge, "model.direction": CLEAR})
    if direction is not None:
        flags.update({"model.kind": "lstm", "model.direction": direction, "model.merge": CLEAR})
    if kind is not None:
        flags["model.kind"] = kind
        # switching kind drops the other kind's setting unless it was given explicitly
        flags.setdefault("model.merge" if kind == "lstm" else "model.direction", CLEAR)
    return flags


def shared_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """The shared model and training flags (popped from ``flags``) as config key paths."""
    mapped = model_flags(*(flags.pop(name, None) for name in MODEL_FLAGS))
    for name in TRAIN_FLAGS:
        if name in flags:
            mapped[f"train.{name}"] = flags.pop(name)
    early_stopping, patience = flags.pop("early_stopping", None), flags.pop("patience", None)
    mapped["train.early_stopping.patience"] = patience
    # --patience implies early stopping, unless --no-early-stopping says otherwise
    mapped["train.early_stopping.enabled"] = (
        early_stopping if early_stopping is not None else (True if patience is not None else None)
    )
    return mapped


def split_flags(flags: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Flag values for :func:`resolve_config`: (values, paths to clear)."""
    values = {path: (None if value is CLEAR else value) for path, value in flags.items()}
    return values, [path for path, value in flags.items() if value is CLEAR]


def refuse_with_resume(what: str, options: dict[str, Any]) -> None:
    """``--resume`` reuses the saved config: refuse options that would change the experiment.

    Args:
        what: what resuming does, for the message.
        options: option name (as typed) to value; None or an empty tuple means not given.
    """
    given = [name for name, value in options.items() if value is not None and value != ()]
    if given:
        raise UsageError(
            f"{what}; {', '.join(given)} would change the experiment",
            "start a new run instead, or resume without those options",
        )


def option_name(flag: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + flag.replace("_", "-")
