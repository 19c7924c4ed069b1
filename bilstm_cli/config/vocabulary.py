"""The config's vocabularies: one list of each kind of allowed value.

Light on purpose (no pydantic): the Click options import it to offer the same choices the
schema accepts, and ``bilstm --help`` must start fast.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

Kind = Literal["lstm", "bilstm"]
Cell = Literal["lstm", "gru", "rnn"]  # model.cell: Keras LSTM, GRU or SimpleRNN
Direction = Literal["forward", "backward", "backward-unaligned"]
Merge = Literal["concat", "sum", "mul", "ave"]
Task = Literal["per-step", "sequence"]
TaskSetting = Literal["auto", "per-step", "sequence"]  # data.task: auto = read from the labels
Optimizer = Literal["adam", "adamw", "sgd", "rmsprop"]
Schedule = Literal["constant", "cosine", "plateau"]  # train.schedule: the learning rate over training
Pooling = Literal["last", "mean"]
Backend = Literal["tensorflow", "jax"]
Metric = Literal["loss", "accuracy"]  # compare.metric: the final score that ranks variants
Executor = Literal["local", "ray"]  # compare.executor
SaveModels = Literal["none", "best", "all"]  # compare.save_models: which runs keep their model


def choices(literal: Any) -> tuple[str, ...]:
    """The allowed values of a ``Literal`` type, in declaration order."""
    return tuple(get_args(literal))


KINDS = choices(Kind)
CELLS = choices(Cell)
OPTIMIZERS = choices(Optimizer)
SCHEDULES = choices(Schedule)
MERGE_MODES = choices(Merge)
DIRECTIONS = choices(Direction)
TASKS = choices(Task)
BACKENDS = choices(Backend)
METRICS = choices(Metric)
EXECUTORS = choices(Executor)
SAVE_MODELS = choices(SaveModels)
# What `bilstm export` writes (not a config key, but a word the CLI offers like the others)
EXPORT_FORMATS = ("savedmodel", "onnx")
DEFAULT_BACKEND = "tensorflow"
# The named model variants compare knows: lstm-<direction> and bilstm-<merge mode>.
MODEL_VARIANTS: tuple[str, ...] = tuple(f"lstm-{d}" for d in DIRECTIONS) + tuple(f"bilstm-{m}" for m in MERGE_MODES)
