"""The config's vocabularies: one list of each kind of allowed value.

Light on purpose (no pydantic): the Click options import it to offer the same choices the
schema accepts, and ``bilstm --help`` must start fast.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

Kind = Literal["lstm", "bilstm"]
Direction = Literal["forward", "backward", "backward-unaligned"]
Merge = Literal["concat", "sum", "mul", "ave"]
Task = Literal["per-step", "sequence"]
TaskSetting = Literal["auto", "per-step", "sequence"]  # data.task: auto = read from the labels
Optimizer = Literal["adam", "sgd", "rmsprop"]
Pooling = Literal["last", "mean"]
Backend = Literal["tensorflow", "jax"]


def choices(literal: Any) -> tuple[str, ...]:
    """The allowed values of a ``Literal`` type, in declaration order."""
    return tuple(get_args(literal))


KINDS = choices(Kind)
MERGE_MODES = choices(Merge)
DIRECTIONS = choices(Direction)
TASKS = choices(Task)
BACKENDS = choices(Backend)
DEFAULT_BACKEND = "tensorflow"
# The named model variants compare knows: lstm-<direction> and bilstm-<merge mode>.
MODEL_VARIANTS: tuple[str, ...] = tuple(f"lstm-{d}" for d in DIRECTIONS) + tuple(f"bilstm-{m}" for m in MERGE_MODES)
