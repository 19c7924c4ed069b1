"""Reusable Click options. Choices come from the config schema, so each list has one home.

Shell completion (``_BILSTM_COMPLETE=bash_source bilstm``, see the README): choices complete
by themselves; file and folder arguments use :func:`file_path` / :func:`folder_path`, and
``--device`` and comma lists such as ``--variants`` have callbacks here. The callbacks run on
every <Tab>: they import nothing heavy.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Sequence

import click
from click.shell_completion import CompletionItem

from .config.vocabulary import (
    BACKENDS,
    CELLS,
    DIRECTIONS,
    KINDS,
    MERGE_MODES,
    MODEL_VARIANTS,
    OPTIMIZERS,
    SCHEDULES,
    TASKS,
)
from .data.formats import FORMATS, PREDICTION_FORMATS, WRITABLE_FORMATS

# ---------------------------------------------------------------------------- paths and completion


def file_path(stdin_or_stdout: bool = False) -> click.Path:
    """A file argument: completes as a file (or ``-`` for stdin/stdout where allowed).

    Click checks nothing (no ``exists``, no readability): the commands' own errors name the
    file, say what is wrong and exit 2, and a run directory or a .keras file are both fine
    where a model is asked for. The value stays a ``str``.
    """
    return click.Path(dir_okay=True, readable=False, allow_dash=stdin_or_stdout)


class _FolderPath(click.Path):
    """A path that completes as a directory and, like :func:`file_path`, checks nothing."""

    def __init__(self) -> None:
        super().__init__(readable=False)
        self.name = "directory"  # --help shows DIRECTORY

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return [CompletionItem(incomplete, type="dir")]


def folder_path() -> click.Path:
    """A folder argument (run or output directory): completes as a directory; a ``str``.

    Not ``click.Path(file_okay=False)``: that would answer an existing file with Click's own
    message, where the commands say what the folder is for and what to do.
    """
    return _FolderPath()


NVIDIA_DEVICES = "/dev/nvidia[0-9]*"  # one file per NVIDIA GPU the driver exposes


def complete_device(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """``auto``, ``cpu``, and ``gpu`` with ``gpu:N`` for each NVIDIA GPU that exists (none on a
    machine without one); counted from ``/dev/nvidiaN``, since asking the backend would take seconds."""
    gpus = len(glob.glob(NVIDIA_DEVICES))
    values = ["auto", "cpu", *(["gpu"] if gpus else []), *(f"gpu:{index}" for index in range(gpus))]
    return [CompletionItem(value) for value in values if value.startswith(incomplete)]


def complete_config_key(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """``--set`` / ``--vary``: config keys from the schema (``train.ep`` -> ``train.epochs=``), then,
    after ``=``, the allowed values of a key that has a fixed set (``model.merge=s`` -> ``model.merge=sum``)."""
    from .config.resolve import VALID_KEYS, allowed_values

    key, equals, value = incomplete.partition("=")
    if not equals:
        sections = {path.rsplit(".", 1)[0] for path in VALID_KEYS if "." in path}
        return [CompletionItem(f"{path}=") for path in VALID_KEYS if path.startswith(key) and path not in sections]
    done, _, current = value.rpartition(",")  # --vary lists several values
    prefix = f"{key}={done}," if done else f"{key}="
    return [CompletionItem(prefix + choice) for choice in allowed_values(key) if choice.startswith(current)]


def complete_comma_list(choices: Sequence[str]) -> Callable:
    """A completion callback for a comma-separated list of ``choices``: completes the part
    after the last comma, keeps what comes before it, and skips choices already listed."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        done, _, current = incomplete.rpartition(",")
        prefix = f"{done}," if done else ""
        chosen = set(done.split(",")) if done else set()
        return [
            CompletionItem(prefix + choice) for choice in choices if choice.startswith(current) and choice not in chosen
        ]

    return complete


complete_variants = complete_comma_list(MODEL_VARIANTS)
complete_modes = complete_comma_list(MERGE_MODES)

# ---------------------------------------------------------------------------- options


def _stack(*decorators: Callable) -> Callable:
    """Apply decorators in reading order (the first one listed is the first in --help)."""

    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


config_options = _stack(
    click.option("--config", "config_file", type=file_path(), help="YAML config file (see configs/)."),
    click.option(
        "--set",
        "assignments",
        multiple=True,
        metavar="KEY=VALUE",
        shell_complete=complete_config_key,
        help="Override any config key, e.g. --set train.learning_rate=0.01 (repeatable).",
    ),
)

device_option = click.option("--device", shell_complete=complete_device, help="auto, cpu, gpu or gpu:N.")


def _flag_only(ctx: click.Context, param: click.Parameter, value):
    """A value from the environment variable is not a flag: it ranks below a config's setting
    (flag > config > environment > default), and :func:`bilstm_cli.backend.select` reads it."""
    if ctx.get_parameter_source(param.name) is click.core.ParameterSource.ENVIRONMENT:
        return None
    return value


backend_option = click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    envvar="BILSTM_BACKEND",
    show_envvar=True,
    callback=_flag_only,
    help="Keras backend (default: train.backend, else $BILSTM_BACKEND, else tensorflow).",
)
dry_run_option = click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan and an estimated time from a short measured probe; train and write nothing.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors and the product.")
input_format_option = click.option(
    "--input-format", type=click.Choice(FORMATS), help="Input format (default: from the name)."
)

model_options = _stack(
    click.option("--kind", type=click.Choice(KINDS), help="Model kind."),
    click.option("--cell", type=click.Choice(CELLS), help="Recurrent cell: LSTM, GRU or SimpleRNN."),
    click.option("--direction", type=click.Choice(DIRECTIONS), help="LSTM direction (implies --kind lstm)."),
    click.option("--merge", type=click.Choice(MERGE_MODES), help="BiLSTM merge mode (implies --kind bilstm)."),
    click.option("--units", type=int, help="Recurrent units per direction."),
    click.option("--layers", type=int, help="Stacked recurrent layers."),
    click.option("--dropout", type=float, help="Dropout after each recurrent layer."),
)

train_options = _stack(
    click.option("--epochs", type=int, help="Training epochs."),
    click.option("--batch-size", type=int, help="Sequences per optimizer step."),
    click.option("--learning-rate", type=float, help="Optimizer learning rate."),
    click.option("--optimizer", type=click.Choice(OPTIMIZERS), help="Optimizer (train.optimizer)."),
    click.option(
        "--schedule", type=click.Choice(SCHEDULES), help="Learning rate: constant, cosine decay or lowered on plateaus."
    ),
    click.option(
        "--early-stopping/--no-early-stopping",
        default=None,
        help="Stop when the validation loss stops improving, keeping the best weights.",
    ),
    click.option("--patience", type=int, help="Early stopping's patience in epochs (implies --early-stopping)."),
    click.option("--seed", type=int, help="Random seed (drawn and recorded if absent)."),
    backend_option,
    device_option,
    click.option(
        "--devices",
        type=int,
        help="Train on the first N devices of --device's kind, each batch split evenly across them.",
    ),
)

task_option = click.option("--task", type=click.Choice(TASKS), help="Labels per step or per sequence.")
write_format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(WRITABLE_FORMATS),
    help="Default: from -o's extension (.parquet: one row per sequence; parquet-long: one row per step).",
)
predict_format_option = click.option(
    "--format", "output_format", type=click.Choice(PREDICTION_FORMATS), default="csv", show_default=True
)
