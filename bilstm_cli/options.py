"""Reusable Click options. Choices come from the config schema, so each list has one home."""

from __future__ import annotations

from collections.abc import Callable

import click

from .config.vocabulary import BACKENDS, DIRECTIONS, KINDS, MERGE_MODES, TASKS
from .data.formats import FORMATS, PREDICTION_FORMATS, WRITABLE_FORMATS


def _stack(*decorators: Callable) -> Callable:
    """Apply decorators in reading order (the first one listed is the first in --help)."""

    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


config_options = _stack(
    click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config file (see configs/)."),
    click.option(
        "--set",
        "assignments",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override any config key, e.g. --set train.learning_rate=0.01 (repeatable).",
    ),
)

device_option = click.option("--device", help="auto, cpu, gpu or gpu:N.")
backend_option = click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    help="Keras backend (default: $BILSTM_BACKEND, else tensorflow).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
quiet_option = click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors and the product.")
input_format_option = click.option(
    "--input-format", type=click.Choice(FORMATS), help="Input format (default: from the name)."
)

model_options = _stack(
    click.option("--kind", type=click.Choice(KINDS), help="Model kind."),
    click.option("--direction", type=click.Choice(DIRECTIONS), help="LSTM direction (implies --kind lstm)."),
    click.option("--merge", type=click.Choice(MERGE_MODES), help="BiLSTM merge mode (implies --kind bilstm)."),
    click.option("--units", type=int, help="LSTM units per direction."),
    click.option("--layers", type=int, help="Stacked recurrent layers."),
    click.option("--dropout", type=float, help="Dropout after each recurrent layer."),
)

train_options = _stack(
    click.option("--epochs", type=int, help="Training epochs."),
    click.option("--batch-size", type=int, help="Sequences per optimizer step."),
    click.option("--learning-rate", type=float, help="Optimizer learning rate."),
    click.option("--seed", type=int, help="Random seed (drawn and recorded if absent)."),
    backend_option,
    device_option,
)

task_option = click.option("--task", type=click.Choice(TASKS), help="Labels per step or per sequence.")
write_format_option = click.option(
    "--format", "fmt", type=click.Choice(WRITABLE_FORMATS), help="Default: from -o's extension."
)
predict_format_option = click.option(
    "--format", "output_format", type=click.Choice(PREDICTION_FORMATS), default="csv", show_default=True
)
