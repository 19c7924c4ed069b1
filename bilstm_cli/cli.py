"""Command-line interface: parse flags, build the config, call one core function, report.

This is the only module that maps exceptions to exit codes (:class:`BilstmGroup`). A command
builds its config with the light :mod:`bilstm_cli.commands.requests` (bad flags fail before
anything heavy loads), then gets its core function from :func:`load_command`, the one path that
selects the backend before a command's modules import Keras. So ``bilstm --help``,
``bilstm config ...`` and ``bilstm generate`` start fast.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

from . import __version__
from .commands.requests import compare_request, require_files, resolve, train_request, tune_request
from .config.overrides import shared_flags
from .config.vocabulary import EXECUTORS, EXPORT_FORMATS, METRICS, MODEL_VARIANTS, SAVE_MODELS
from .errors import EXIT_FAILURE, EXIT_INTERRUPTED, BilstmError, os_error
from .fileio.streams import silence_stdout
from .options import (
    backend_option,
    complete_config_key,
    complete_modes,
    complete_variants,
    config_options,
    device_option,
    dry_run_option,
    file_path,
    folder_path,
    input_format_option,
    json_option,
    model_options,
    predict_format_option,
    quiet_option,
    task_option,
    train_options,
    write_format_option,
)
from .signals import interrupted_during_start_up, start_up_guard

# ---------------------------------------------------------------------------- error handling


class BilstmGroup(click.Group):
    """A group that turns project errors into one-line messages and documented exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))  # --debug or $BILSTM_DEBUG (Click's envvar)
        try:
            with start_up_guard():
                result = super().invoke(ctx)
            if interrupted_during_start_up():  # a Ctrl-C that a library swallowed still stops us
                raise KeyboardInterrupt
            return result
        except BilstmError as exc:
            if debug:
                traceback.print_exc()
            _print_error(str(exc))
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            _print_error("interrupted")
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # the reader of our stdout went away (e.g. `| head`): not an error of ours
            silence_stdout()
            ctx.exit(0)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence for people
            if debug:
                traceback.print_exc()
            known = os_error(exc)  # disk full: a message for people, not a bug report
            if known is not None:
                _print_error(str(known))
                ctx.exit(known.exit_code)
            _print_error(f"internal error: {type(exc).__name__}: {exc}")
            if not debug:
                click.echo("  run again with --debug for the traceback, and report it", err=True)
            ctx.exit(EXIT_FAILURE)


def _print_error(message: str) -> None:
    lines = message.splitlines() or [""]
    click.echo(f"error: {lines[0]}", err=True)
    for line in lines[1:]:
        click.echo(f"  {line.strip()}" if line.startswith("  hint") else f"error: {line}", err=True)


def load_command(command: str, backend_name: str | None = None):
    """A command's core function (``run_<command>`` of ``commands/<command>.py``), imported after
    the backend is selected (``backend_name``, else $BILSTM_BACKEND, else TensorFlow): Keras reads
    its backend once, when it is first imported, and the command modules import it at the top."""
    import importlib

    from . import backend

    backend.select(backend_name)
    return getattr(importlib.import_module(f".commands.{command}", __package__), f"run_{command}")


# ---------------------------------------------------------------------------- commands


@click.group(cls=BilstmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="bilstm")
@click.option(
    "--debug", is_flag=True, envvar="BILSTM_DEBUG", show_envvar=True, help="Show tracebacks and libraries' own logs."
)
def main(debug: bool) -> None:
    """Train, evaluate and honestly compare LSTM and BiLSTM sequence classifiers.

    \b
    Quick start:
      bilstm train --merge concat            # BiLSTM on the cumulative-sum task
      bilstm compare --modes sum,mul,ave,concat --repeats 10
      bilstm generate --samples 5 | bilstm predict runs/NAME -
    """
    if debug:
        os.environ["BILSTM_DEBUG"] = "1"


@main.command()
@config_options
@click.option("--samples", type=int, default=1000, show_default=True, help="Number of sequences.")
@click.option("--timesteps", type=int, help="Steps per sequence (data.timesteps, default 10).")
@click.option("--threshold", type=float, help="Label limit as a fraction of timesteps (default 0.25).")
@task_option
@click.option("--seed", type=int, help="Seed (same seed, byte-identical output).")
@write_format_option
@click.option(
    "-o",
    "--output",
    type=file_path(stdin_or_stdout=True),
    default="-",
    show_default=True,
    help="Output file, '-' for stdout.",
)
@quiet_option
def generate(config_file, assignments, samples, timesteps, threshold, task, seed, fmt, output, quiet):
    """Generate the tutorial's cumulative-sum sequence task."""
    run_generate = load_command("generate")
    config = resolve(
        config_file,
        assignments,
        {"data.timesteps": timesteps, "data.threshold": threshold, "data.task": task, "data.seed": seed},
    )
    result = run_generate(config, samples, output, fmt)
    if result.warning:
        click.echo(f"warning: {result.warning}", err=True)
    if not quiet:
        target = "stdout" if result.path == "-" else result.path
        click.echo(
            f"wrote {result.samples} sequences x {result.timesteps} steps ({result.fmt}) to {target}, "
            f"seed {result.seed}",
            err=True,
        )


@main.group()
def config() -> None:
    """Show or check configurations."""


@config.command("show")
@config_options
@model_options
@train_options
@click.option("--data", "data_path", help="A training file: shows the recipe's defaults for dataset files.")
@click.option("--val-data", "val_path", help="A validation file.")
def config_show(config_file, assignments, data_path, val_path, **flags):
    """Print the resolved config as YAML (valid input for --config)."""
    paths = {"data.train_path": data_path, "data.val_path": val_path}
    require_files(paths.values())
    resolved = resolve(config_file, assignments, {**shared_flags(flags), **paths})
    click.echo(resolved.to_yaml(), nl=False)


@config.command("validate")
@click.argument("file", type=file_path())
@quiet_option
def config_validate(file, quiet):
    """Check a config file; exit 0 if valid, 2 with the problems if not."""
    resolve(file, (), {})
    if not quiet:
        click.echo(f"{file}: valid", err=True)


# ---------------------------------------------------------------------------- train


@main.command()
@config_options
@model_options
@train_options
@click.option(
    "--data",
    "data_path",
    type=file_path(stdin_or_stdout=True),
    help="Train on this dataset file ('-' for stdin) instead of generated data.",
)
@click.option("--val-data", "val_path", type=file_path(), help="Validation dataset file.")
@click.option("--log-every", type=int, help="Epochs per logged row (default: about 20 rows).")
@click.option("--out", type=folder_path(), help="Run directory (default: runs/<timestamp>-<model>).")
@click.option("--name", help="Run directory name under output.root.")
@click.option("--force", is_flag=True, help="Replace an existing run directory.")
@click.option("--resume", type=folder_path(), help="Continue an interrupted run directory.")
@click.option("--no-tensorboard", is_flag=True, help="Write no TensorBoard event files (output.tensorboard: false).")
@dry_run_option
@json_option
@quiet_option
def train(
    config_file,
    assignments,
    data_path,
    val_path,
    log_every,
    out,
    name,
    force,
    resume,
    no_tensorboard,
    dry_run,
    as_json,
    quiet,
    **flags,
):
    """Train an LSTM or BiLSTM and save a run directory."""
    from .report.console import emit_json, stderr_console
    from .report.training import EpochReporter

    if dry_run and resume:
        raise click.UsageError("--dry-run plans a new run; it does not combine with --resume")
    config = train_request(
        config_file,
        assignments,
        flags,
        data_path=data_path,
        val_path=val_path,
        log_every=log_every,
        out=out,
        name=name,
        force=force,
        resume=resume,
        tensorboard=False if no_tensorboard else None,
    )
    if dry_run:
        _dry_run(load_command("dry_run", config.train.backend)(config, out=out), as_json)
        return
    console = stderr_console()
    reporter = EpochReporter(config.train.epochs, EpochReporter.choose_mode(as_json, quiet, console), console)
    run_train = load_command("train", config.train.backend)
    result = run_train(config, reporter, out=out, resume=resume)
    if as_json:
        emit_json({"event": "finished", "run_dir": str(result.run_dir), "metrics": result.metrics})
    elif not quiet:
        final, timing = result.metrics["final"], result.metrics["timing"]
        selection = result.metrics.get("selection")
        if selection is not None:  # the refit's model: the validation scores are its first phase's
            final = {"val_loss": selection["val_loss"], "val_accuracy": selection["val_accuracy"]}
            console.print(
                f"validation phase: best epoch {selection['best_epoch']} of {selection['epochs_run']}; "
                f"refit: {result.metrics['refit']['epochs']} epochs on {result.metrics['refit']['sequences']} sequences"
            )
        console.print(
            f"val_loss {_fmt(final['val_loss'])}  val_accuracy {_fmt(final['val_accuracy'])}  "
            f"({result.metrics['epochs_run']} epochs, {timing['steps']} steps in {timing['train_seconds']:.1f}s, "
            f"compile {timing['compile_seconds']:.1f}s)\nsaved {result.run_dir}/"
        )


def _dry_run(plan: dict, as_json: bool) -> None:
    from .report.console import emit_json, stdout_console
    from .report.dry_run import print_dry_run

    if as_json:
        emit_json(plan)
    else:
        print_dry_run(plan, stdout_console())


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


# ---------------------------------------------------------------------------- evaluate / predict


@main.command()
@click.argument("target", metavar="RUN_DIR|MODEL.keras", type=file_path())
@click.option(
    "--data",
    "data_path",
    type=file_path(stdin_or_stdout=True),
    help="Labelled dataset file ('-' for stdin); default: fresh sequences.",
)
@click.option("--samples", type=int, default=1000, show_default=True, help="Fresh sequences to draw without --data.")
@click.option("--seed", type=int, help="Seed for the fresh sequences (drawn and shown if absent).")
@click.option("--show", type=int, default=3, show_default=True, help="Expected/Predicted listing for K sequences.")
@input_format_option
@backend_option
@device_option
@json_option
def evaluate(target, data_path, samples, seed, show, input_format, backend, device, as_json):
    """Score a saved model: loss, accuracy, per-step accuracy, confusion matrix, per-class F1."""
    from .report.console import emit_json, stdout_console
    from .report.evaluation import print_evaluation

    run_evaluate = load_command("evaluate", backend)
    result = run_evaluate(target, data_path, samples, seed, show, device or "auto", input_format, backend)
    if as_json:
        emit_json(result.to_dict())
    else:
        print_evaluation(result, stdout_console())


@main.command()
@click.argument("target", metavar="RUN_DIR|MODEL.keras", type=file_path())
@click.argument("input_path", metavar="INPUT|-", type=file_path(stdin_or_stdout=True))
@predict_format_option
@input_format_option
@backend_option
@device_option
def predict(target, input_path, output_format, input_format, backend, device):
    """Per-step probability and class for every input sequence, to stdout."""
    run_predict = load_command("predict", backend)
    for part in run_predict(target, input_path, output_format, device or "auto", input_format, backend):
        sys.stdout.write(part)  # a streamed file's predictions leave as each chunk's are made
        sys.stdout.flush()


# ---------------------------------------------------------------------------- compare


@main.command()
@config_options
@click.option(
    "--variants", shell_complete=complete_variants, help=f"Comma-separated, from: {', '.join(MODEL_VARIANTS)}."
)
@click.option("--modes", shell_complete=complete_modes, help="Shorthand for BiLSTM variants, e.g. sum,mul,ave,concat.")
@click.option(
    "--vary",
    multiple=True,
    metavar="KEY=V1,V2",
    shell_complete=complete_config_key,
    help="A grid axis, e.g. --vary model.units=20,64 (repeatable: every combination is a variant).",
)
@click.option(
    "--data",
    "data_paths",
    multiple=True,
    type=file_path(stdin_or_stdout=True),
    help="Compare on this dataset file (repeatable: one dataset each); default: the data section.",
)
@click.option("--repeats", type=int, help="Paired repeats (seeds) per variant and dataset.")
@click.option("--epochs", type=int, help="Training epochs per run.")
@click.option("--metric", type=click.Choice(METRICS), help="Final score that ranks variants.")
@click.option("--workers", type=int, help="Worker processes.")
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    help='Where runs train: local processes (default) or a Ray cluster (pip install "bilstm[ray]").',
)
@click.option(
    "--address",
    metavar="ADDR",
    help="Ray cluster to join: auto (the one on this machine) or HOST:PORT; default (or local): a private instance.",
)
@click.option("--cpus-per-run", type=float, help="Ray: CPUs each job reserves (fractions allowed; default 1).")
@click.option("--gpus-per-run", type=float, help="Ray: GPUs each job reserves (fractions allowed; default 0).")
@click.option("--seed", type=int, help="Base seed: repeat r uses seed + r.")
@click.option(
    "--save-models",
    type=click.Choice(SAVE_MODELS),
    help="Keep models as run directories under OUT/models/: the best repeat of each variant, or all runs.",
)
@backend_option
@device_option
@click.option("--out", type=folder_path(), help="Output directory (default: runs/<timestamp>-compare).")
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
@click.option("--resume", type=folder_path(), help="Finish an interrupted comparison.")
@dry_run_option
@json_option
@quiet_option
def compare(config_file, assignments, resume, dry_run, as_json, quiet, **options):
    """Train variants x datasets over paired seeds and say, with statistics, which is better."""
    from .report.comparison import CompareReporter, print_compare_summary
    from .report.console import emit_json, stderr_console, stdout_console
    from .report.training import EpochReporter

    if dry_run and resume:
        raise click.UsageError("--dry-run plans a new comparison; it does not combine with --resume")
    config, variants, datasets = compare_request(config_file, assignments, options, resume)
    if dry_run:
        _dry_run(load_command("dry_run", config.train.backend)(config, variants, datasets, out=options["out"]), as_json)
        return
    console = stderr_console()
    reporter = CompareReporter(EpochReporter.choose_mode(as_json, quiet, console), console)
    run_compare = load_command("compare", config.train.backend)
    result = run_compare(config, variants, reporter, datasets, out=options["out"], resume=resume)
    if as_json:
        emit_json({**result.summary, "out": str(result.out), "wall_seconds": result.wall_seconds})
    else:
        print_compare_summary(result.summary, stdout_console(), result.wall_seconds)
        if not quiet:
            console.print(f"saved {result.out}/ ({', '.join(result.files)}, config.yaml, configs/, results/)")


# ---------------------------------------------------------------------------- tune


@main.command()
@config_options
@click.option(
    "--search",
    multiple=True,
    metavar="KEY=SPEC",
    help="A search dimension (repeatable): int:LOW:HIGH[:log], float:LOW:HIGH[:log] or choice:A,B,...",
)
@click.option("--trials", type=int, help="Finished trials to reach (tune.trials, default 20).")
@click.option("--timeout", metavar="DURATION", help="Stop asking for trials after this long: 90s, 10m, 2h.")
@click.option("--sampler", type=click.Choice(["tpe", "random", "grid"]), help="Default tpe; grid: all choices.")
@click.option("--pruner", type=click.Choice(["median", "halving", "none"]), help="Default median.")
@click.option("--metric", type=click.Choice(METRICS), help="Validation score the search optimises.")
@click.option("--top-k", type=int, help="Finalists to confirm (default 3).")
@click.option("--confirm-repeats", type=int, help="Paired repeats of the confirmation (default 10; 0: none).")
@click.option("--storage", metavar="URL", help="Optuna storage URL (default: sqlite study.db in the tune dir).")
@click.option("--data", "data_path", type=file_path(), help="Training dataset file (default: generated data).")
@click.option("--val-data", "val_path", type=file_path(), help="Validation dataset file.")
@click.option("--test-data", "test_path", type=file_path(), help="Test file: only the confirmation scores on it.")
@click.option("--epochs", type=int, help="Training epochs per trial.")
@click.option("--seed", type=int, help="Search seed (every trial trains with it).")
@click.option("--workers", type=int, help="Trials trained at once in worker processes; the confirmation's too.")
@click.option("--executor", type=click.Choice(EXECUTORS), help="Confirmation: local processes or Ray.")
@backend_option
@device_option
@click.option("--out", type=folder_path(), help="Tune directory (default: runs/<timestamp>-tune).")
@click.option("--force", is_flag=True, help="Replace an existing tune directory.")
@click.option("--resume", type=folder_path(), help="Continue an interrupted search (after Ctrl-C or kill -9).")
@json_option
@quiet_option
@dry_run_option
def tune(config_file, assignments, resume, as_json, quiet, dry_run, **options):
    """Search config values with Optuna, then confirm the best on data the search never saw.

    \b
    Example:
      bilstm tune --search model.units=int:8:64:log --search train.learning_rate=float:1e-4:1e-2:log \\
                  --search model.merge=choice:sum,concat --trials 30 --epochs 300
    """
    from .report.comparison import CompareReporter
    from .report.console import emit_json, stderr_console, stdout_console
    from .report.training import EpochReporter
    from .report.tuning import TuneReporter, print_tune_summary

    if dry_run and resume:
        raise click.UsageError("--dry-run plans a new search; it does not combine with --resume")
    config, dimensions = tune_request(config_file, assignments, options, resume)
    if dry_run:
        load_command("dry_run", config.train.backend)  # selects the backend, then imports the module
        from .commands.dry_run import run_tune_dry_run

        _dry_run(run_tune_dry_run(config, dimensions, out=options["out"]), as_json)
        return
    console = stderr_console()
    mode = EpochReporter.choose_mode(as_json, quiet, console)
    reporter = TuneReporter(mode, console)
    quiet_mode = "quiet" if mode == "json" else mode
    compare_reporter = CompareReporter(quiet_mode, console)
    train_reporter = EpochReporter(config.train.epochs, "quiet", console)
    run_tune = load_command("tune", config.train.backend)
    result = run_tune(config, dimensions, reporter, compare_reporter, train_reporter, out=options["out"], resume=resume)
    if as_json:
        emit_json({"event": "finished", **result.summary, "out": str(result.out), "wall_seconds": result.wall_seconds})
    else:
        print_tune_summary(result.summary, stdout_console(), result.wall_seconds)
        if not quiet:
            console.print(
                f"saved {result.out}/ (trials.csv, summary.json, best.yaml, best-run/"
                + (", confirm/" if result.summary["confirmation"] else "")
                + f"); study: {result.summary['storage']}"
            )


# ---------------------------------------------------------------------------- runs


class _ListByDefault(click.Group):
    """``bilstm runs [DIR]`` lists; ``bilstm runs show|diff ...`` are subcommands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@main.group(cls=_ListByDefault)
def runs() -> None:
    """List run, comparison and tune directories; show one; diff two.

    \b
      bilstm runs [DIR]                    # a table of DIR (default: runs/)
      bilstm runs --filter kind=train --sort loss
      bilstm runs show RUN                 # config and scores
      bilstm runs diff RUN_A RUN_B         # config and score differences
    """


@runs.command("list")
@click.argument("folder", metavar="[DIR]", required=False, type=folder_path())
@click.option("--sort", "sort_key", metavar="KEY", help="Sort by a column (-KEY: descending); default: date.")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="Keep rows whose KEY matches VALUE (shell wildcards, e.g. model='bilstm-*'; repeatable).",
)
@json_option
def runs_list(folder, sort_key, filters, as_json):
    """A table of the run, comparison and tune directories in DIR (default: runs/)."""
    from .commands.runs import run_runs_list
    from .report.console import emit_json, stdout_console
    from .report.runs import print_runs_table

    root, entries = run_runs_list(folder, tuple(filters), sort_key)
    if as_json:
        for entry in entries:
            emit_json(entry.to_dict())
    elif entries:
        print_runs_table(entries, stdout_console())
    else:
        click.echo(f"no run, comparison or tune directories in {root}/", err=True)


@runs.command("show")
@click.argument("run_dir", metavar="RUN", type=folder_path())
@json_option
def runs_show(run_dir, as_json):
    """A run, comparison or tune directory: its summary, scores and config."""
    from .commands.runs import run_runs_show
    from .report.console import emit_json, stdout_console
    from .report.runs import print_run
    from .runs.catalog import scores

    entry = run_runs_show(run_dir)
    if as_json:
        emit_json({**entry.to_dict(), "scores": scores(entry), "config": entry.details.get("config")})
    else:
        print_run(entry, stdout_console())


@runs.command("diff")
@click.argument("first", metavar="RUN_A", type=folder_path())
@click.argument("second", metavar="RUN_B", type=folder_path())
@json_option
def runs_diff(first, second, as_json):
    """Config keys and scores that differ between two directories, side by side."""
    from .commands.runs import run_runs_diff
    from .report.console import emit_json, stdout_console
    from .report.runs import diff_json, print_diff

    a, b, found, equal = run_runs_diff(first, second)
    if as_json:
        emit_json(diff_json(a, b, found, equal))
    else:
        print_diff(a, b, found, equal, stdout_console())


# ---------------------------------------------------------------------------- export


@main.command()
@click.argument("target", metavar="RUN_DIR|MODEL.keras", type=file_path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    help="Default: onnx for a .onnx output name, else savedmodel.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=file_path(),
    help="SavedModel directory or .onnx file to write (its description goes to DIR/bilstm.json or FILE.json).",
)
@click.option("--force", is_flag=True, help="Replace an existing export.")
@json_option
@quiet_option
def export(target, fmt, output, force, as_json, quiet):
    """Export a trained model for serving: TensorFlow SavedModel or ONNX.

    Runs on TensorFlow whichever backend trained the model, and checks the export against the
    model on random variable-length input before writing it.
    """
    # not through load_command: export checks its target and output first (a mistake is reported
    # at once, in any process), then selects TensorFlow itself, whichever backend trained the model
    from .commands.export import run_export
    from .report.console import emit_json

    result = run_export(target, output, fmt, force)
    if as_json:
        emit_json(
            {
                "path": str(result.path),
                "format": result.fmt,
                "metadata": str(result.metadata_path),
                "max_difference": result.max_difference,
                "seconds": result.seconds,
            }
        )
    elif not quiet:
        click.echo(
            f"exported {target} as {result.fmt} to {result.path} ({result.seconds:.1f}s; largest difference "
            f"from the model {result.max_difference:.1g} on random variable-length input)\n"
            f"description for serving: {result.metadata_path}",
            err=True,
        )
