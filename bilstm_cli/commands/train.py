"""``bilstm train``: one training run into a run directory, resumable."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .. import backend
from ..config.refit import refit_applies, refit_config, refit_epochs
from ..config.schema import Config
from ..data import stdin_data
from ..data.dataset import Dataset
from ..data.formats import STDIN, source_label
from ..data.prepare import prepare_training_data, read_files
from ..device import select_device
from ..engine.history import History
from ..engine.loop import CopyProgress, EarlyStoppingState, FitCallbacks, FitResult, NonFiniteLoss, PlateauState
from ..engine.session import TrainingSession
from ..errors import Interrupted, UsageError
from ..fileio import atomic
from ..fileio.files import write_csv, write_json
from ..report.plots import plot_history
from ..runs import directory
from ..runs.checkpoint import load_checkpoint, load_checkpoint_with_best, load_partial_epoch, save_checkpoint
from ..runs.tensorboard import EventLog
from ..signals import StopRequest
from .requests import recordable


class Reporter(Protocol):
    def message(self, text: str) -> None: ...
    def start(self, start_epoch: int = 0) -> None: ...
    def on_progress(self, epoch: int) -> None: ...
    def on_log(self, record) -> None: ...
    def close(self) -> None: ...


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, Any]


def run_train(config: Config, reporter: Reporter, out: str | None = None, resume: str | None = None) -> TrainResult:
    """Train the configured model and save the run directory.

    Args:
        config: the resolved config (its seed is drawn if missing and recorded).
        reporter: receives progress and logged rows (the CLI renders them).
        out: explicit run directory; default ``output.root/output.name``.
        resume: a run directory with a checkpoint to continue (its saved config is used).

    The run directory is locked from its claim to the end: no other process can train in it,
    replace it (``--force``) or resume it meanwhile.
    """
    try:
        return _train(config, reporter, out, resume)
    finally:
        directory.release_run_directories()


def _train(config: Config, reporter: Reporter, out: str | None, resume: str | None) -> TrainResult:
    started = time.perf_counter()
    backend.select(config.train.backend)
    checkpoint_state, checkpoint_meta, best_state = None, None, None
    if resume is not None:
        run_dir = Path(resume)
        directory.hold_run_directory(run_dir)
        checkpoint_state, checkpoint_meta, best_state = load_checkpoint_with_best(run_dir)
        # a run stopped (Ctrl-C, SIGKILL) between its last checkpoint and its outputs: write them now
        longer = _planned_epochs(run_dir) < config.train.epochs  # --resume --epochs N
        finishing = bool(checkpoint_meta.get("finished")) and not longer
        if finishing and all((run_dir / name).exists() for name in (directory.MODEL, directory.METRICS)):
            raise UsageError(
                f"{run_dir} already finished (at epoch {checkpoint_meta['epoch']}): nothing to resume",
                f"train it longer with: bilstm train --resume {run_dir} --epochs N",
            )
        if longer:
            _record_longer_plan(run_dir, config)
    else:
        config = recordable(config)
    seed = config.train.seed
    # bad data fails here, before anything is written
    stdin_data.require_data(config.data, resume)
    files = read_files(config.data)
    if files is not None and _pinned(config) and not isinstance(files.train, Dataset):
        raise UsageError(
            f"{config.data.train_path} is larger than data.memory_limit, so it would be streamed, but this "
            "run's data came from standard input and must be checked whole against its fingerprint",
            "raise data.memory_limit (e.g. --set data.memory_limit=16GB) to read it whole",
        )
    found = stdin_data.fingerprint(files.train) if files is not None and _pinned(config) else None
    if found is not None:
        stdin_data.check_same_data(config.data.stdin, found, source_label(config.data.train_path))
    device = select_device(config.train.device)
    run = _Run(config, reporter, files, found, device, started)
    if checkpoint_meta is not None and checkpoint_meta.get("phase") == REFIT:  # stopped during the refit
        run.run_dir = run_dir
        return run.refit(checkpoint_meta["selection"], (checkpoint_state, checkpoint_meta))

    data = prepare_training_data(config.data, seed, config.train.class_weight, files=files)
    session = TrainingSession([config], [seed], data, device)
    if resume is None:
        run_dir = directory.prepare_run_directory(
            directory.run_directory(config.output, session.variant(), out), config.output.overwrite
        )
        directory.save_config(run_dir, stdin_data.recorded_config(config, found))  # what a re-run can use
        write_json(run_dir / directory.DATA_SPEC, data.describe())
    run.run_dir = run_dir
    reporter.message(
        f"training {session.variant()} on {session.device.description} with {backend.name()} "
        f"(XLA {'on' if session.jit_compile else 'off'}, seed {seed}) -> {run_dir}"
    )
    reporter.message(_summary_line(session.model_summary()))
    compile_seconds = session.compile()
    progress, start_epoch = CopyProgress(), 0
    if checkpoint_state is not None:
        session.engine.load_state(checkpoint_state)
        progress.history = History.from_dict(checkpoint_meta["history"])
        start_epoch = int(checkpoint_meta["epoch"])
        progress.stopping = EarlyStoppingState.from_meta(checkpoint_meta.get("early_stopping"), best_state)
        progress.plateau = PlateauState.from_meta(checkpoint_meta.get("plateau"))
        partial = _restore_partial_epoch(progress, run_dir, checkpoint_meta)
        if finishing:
            # the finished checkpoint holds the final weights (early stopping's best already restored)
            reporter.message(f"{run_dir} finished at epoch {start_epoch}; writing its missing model and metrics")
            stopped = "early-stopping" if start_epoch < config.train.epochs else None
            elapsed = progress.history.elapsed[-1] if progress.history.elapsed else 0.0
            result = FitResult(progress.history, start_epoch, stopped, progress.stopping.best_epoch, elapsed)
            return _save_outputs(run_dir, session, result, compile_seconds, started)
        within = f" (step {partial} of epoch {start_epoch + 1})" if partial else ""
        reporter.message(f"resuming at epoch {start_epoch}/{config.train.epochs}{within}")
    refits = refit_applies(config)
    result = run.phase(session, progress, start_epoch, {}, events=True, finish=not refits)
    _write_history(run_dir, result.history)
    if not refits:
        return _save_outputs(run_dir, session, result, compile_seconds, started)
    selection = session.metrics(result, compile_seconds, time.perf_counter() - started)
    plot_history(result.history, run_dir / directory.PLOT, f"{session.variant()} (seed {seed}, validation phase)")
    chosen = refit_epochs(config, result.best_epoch, result.epochs_run)
    summary = {
        "epochs_run": result.epochs_run,
        "stopped": result.stopped,
        "best_epoch": result.best_epoch,
        "refit_epochs": chosen,
        "train_sequences": data.train_size,
        "validation_sequences": data.validation.size if data.validation is not None else 0,
        "val_loss": selection["final"]["val_loss"],
        "val_accuracy": selection["final"]["val_accuracy"],
        "compile_seconds": compile_seconds,
        "train_seconds": result.train_seconds,
    }
    return run.refit(summary, None)


def _restore_partial_epoch(progress: CopyProgress, run_dir: Path, meta: dict) -> int:
    """The steps of the epoch a checkpoint stopped part-way through (0: none) into ``progress``."""
    partial = load_partial_epoch(run_dir) if meta.get("partial_steps") else None
    progress.partial = [partial] if partial is not None else []
    return 0 if partial is None else len(partial)


REFIT = "refit"  # checkpoint meta "phase" of a run's refit
STOPPING = "stopping at the next safe point to save a checkpoint (press again to quit at once)"


class _Run:
    """One ``train`` run's phases (the validation phase, then the refit) into ``run_dir``."""

    def __init__(self, config: Config, reporter: Reporter, files, found, device, started: float):
        self.config, self.reporter, self.files, self.found = config, reporter, files, found
        self.device, self.started = device, started
        self.run_dir: Path | None = None

    def phase(
        self,
        session: TrainingSession,
        progress: CopyProgress,
        start_epoch: int,
        meta_extra: dict,
        events: bool,
        finish: bool,
        history_file: str = directory.HISTORY,
    ) -> FitResult:
        """Train ``session`` from ``start_epoch`` with checkpoints (their meta with
        ``meta_extra``); the last checkpoint is marked finished when ``finish``."""
        run_dir, reporter, config = self.run_dir, self.reporter, session.configs[0]
        history, stopping = progress.history, progress.stopping

        def checkpoint(epoch: int, current_history: History, finished: bool = False) -> None:
            state = session.engine.state()
            partial = progress.partial_results() if epoch == progress.epochs_run else None
            if not all(np.isfinite(value).all() for value in state if value.dtype.kind == "f"):
                # never replace the last good checkpoint with broken weights
                if partial is not None and len(partial):  # part-way through epoch + 1: it broke them
                    raise NonFiniteLoss(epoch + 1, current_history)
                raise NonFiniteLoss(epoch, current_history.truncate(len(current_history) - 1))
            meta = {
                "epoch": epoch,
                "seed": config.train.seed,
                "history": current_history.to_dict(),
                "finished": finished,
                "early_stopping": stopping.to_meta(),
                "plateau": progress.plateau.to_meta(),
                **meta_extra,
            }
            if partial is not None and len(partial):
                meta["partial_steps"] = len(partial)
            save_checkpoint(run_dir, state, meta, stopping.best_state, partial)

        recorded = stdin_data.recorded_config(self.config, self.found)
        log = _open_events(recorded, run_dir, start_epoch) if events else None

        def on_log(record) -> None:
            reporter.on_log(record)
            if log is not None:
                log.write_epochs(_columns(history), record.epoch)

        if meta_extra and start_epoch == 0:
            checkpoint(0, history)  # a run stopped before the phase's first checkpoint resumes it
        reporter.start(start_epoch)
        written = history  # the epochs to put in the event files when training ends, however it ends
        try:
            with StopRequest(STOPPING) as stop:
                # the early-stopping state comes in on resume, and the checkpoint callback saves it
                callbacks = FitCallbacks(on_log, reporter.on_progress, checkpoint, lambda: stop.requested)
                (result,) = session.fit(callbacks, start_epoch, [progress])
        except Exception as exc:
            reporter.close()
            if isinstance(exc, NonFiniteLoss):
                written = exc.history
                _write_history(run_dir, exc.history, history_file)
                good = _checkpoint_epoch(run_dir)
                exc.message += f"; history saved up to epoch {exc.epoch - 1}" + (
                    f", last good checkpoint at epoch {good}" if good is not None else ""
                )
            raise
        finally:
            if log is not None:
                log.write_epochs(_columns(written))
                log.close()
        reporter.close()

        if result.stopped == "interrupted":
            _write_history(run_dir, result.history, history_file)
            checkpoint(result.epochs_run, result.history)
            raise Interrupted(
                f"interrupted at epoch {result.epochs_run}/{config.train.epochs}"
                f"{' of the refit' if meta_extra else ''}; checkpoint and history saved in {run_dir}",
                f"resume with: bilstm train --resume {run_dir}",
            )
        if finish:
            _write_history(run_dir, result.history, history_file)
            checkpoint(result.epochs_run, result.history, finished=True)
        return result

    def refit(self, selection: dict, checkpoint: tuple | None) -> TrainResult:
        """Train again on every training sequence for ``selection["refit_epochs"]`` epochs
        (resumed from ``checkpoint``: its state and meta) and save that model as the run's."""
        config = refit_config(self.config, int(selection["refit_epochs"]))
        seed, reporter = config.train.seed, self.reporter
        data = prepare_training_data(config.data, seed, config.train.class_weight, files=self.files)
        session = TrainingSession([config], [seed], data, self.device)
        compile_seconds = session.compile()
        progress, start_epoch = CopyProgress(), 0
        if checkpoint is not None:
            state, meta = checkpoint
            session.engine.load_state(state)
            progress.history = History.from_dict(meta["history"])
            start_epoch = int(meta["epoch"])
            _restore_partial_epoch(progress, self.run_dir, meta)
        if hasattr(reporter, "set_total"):
            reporter.set_total(config.train.epochs)
        reporter.message(
            f"refit: {config.train.epochs} epochs on all {data.train_size} training sequences "
            f"(best validation epoch {selection['best_epoch']})"
            + (f", resuming at epoch {start_epoch}" if start_epoch else "")
        )
        if checkpoint is not None and checkpoint[1].get("finished"):
            result = FitResult(progress.history, start_epoch, None, None, 0.0)
        else:
            meta_extra = {"phase": REFIT, "selection": selection}
            result = self.phase(session, progress, start_epoch, meta_extra, False, True, REFIT_HISTORY)
        metrics_compile = compile_seconds + float(selection.get("compile_seconds", 0.0))
        outputs = _save_outputs(self.run_dir, session, result, metrics_compile, self.started, save=False)
        metrics = outputs.metrics
        metrics["refit"] = {
            "epochs": config.train.epochs,
            "sequences": data.train_size,
            "scale": config.train.refit.scale,
            "train_seconds": result.train_seconds,
        }
        metrics["selection"] = {k: v for k, v in selection.items() if k != "compile_seconds"}
        write_json(self.run_dir / directory.METRICS, metrics)
        return outputs


REFIT_HISTORY = "history-refit.csv"


def _save_outputs(
    run_dir: Path,
    session: TrainingSession,
    result: FitResult,
    compile_seconds: float,
    started: float,
    save: bool = True,
) -> TrainResult:
    """The finished run's model, metrics and plot (history.csv is written before the finished
    checkpoint, so a run resumed to write these has it already); metrics.json only if ``save``."""
    metrics = session.metrics(result, compile_seconds, time.perf_counter() - started)
    directory.save_model(run_dir, session.model_to_save())
    if save:
        write_json(run_dir / directory.METRICS, metrics)
        plot_history(result.history, run_dir / directory.PLOT, f"{session.variant()} (seed {session.seeds[0]})")
    return TrainResult(run_dir, metrics)


def _summary_line(summary: dict[str, Any]) -> str:
    """``model: length_mask LengthMask, bilstm_0 Bidirectional(LSTM, concat) 3,520, ...; 3,561 parameters``."""
    layers = ", ".join(
        f"{layer['name']} {layer['type']}" + (f" {layer['parameters']:,}" if layer["parameters"] else "")
        for layer in summary["layers"]
    )
    return f"model: {layers}; {summary['parameters']:,} parameters"


def _pinned(config: Config) -> bool:
    """Whether the training data needs a fingerprint: it comes from stdin now, or the config
    recorded one (from an earlier run on stdin data) that it must match."""
    return config.data.train_path == STDIN or config.data.stdin is not None


def _planned_epochs(run_dir: Path) -> int:
    """The epochs the run's config.yaml plans (what ``--epochs`` with ``--resume`` may raise)."""
    import yaml

    return int(yaml.safe_load((run_dir / directory.CONFIG).read_text())["train"]["epochs"])


def _record_longer_plan(run_dir: Path, config: Config) -> None:
    """A finished run trained longer: its config.yaml says the new length (and the log interval
    it keeps), so the directory describes what it holds and a re-run reproduces it."""
    import yaml

    saved = yaml.safe_load((run_dir / directory.CONFIG).read_text())
    saved["train"].update(epochs=config.train.epochs, log_every=config.train.log_every)
    atomic.write_text(run_dir / directory.CONFIG, yaml.safe_dump(saved, sort_keys=False))


def _open_events(config: Config, run_dir: Path, start_epoch: int) -> EventLog | None:
    """The run's TensorBoard event file (None when output.tensorboard is off); a new run's
    starts with ``config`` as text (the config.yaml a re-run can use)."""
    if not config.output.tensorboard:
        return None
    events = EventLog(run_dir / directory.TENSORBOARD, config.train.learning_rate, resume_from_epoch=start_epoch)
    if start_epoch == 0:
        events.write_config(config.to_yaml())
    return events


def _columns(history: History) -> dict[str, list]:
    """The history's columns by name, without copying them."""
    return {name: getattr(history, name) for name in History.COLUMNS}


def _write_history(run_dir: Path, history: History, name: str = directory.HISTORY) -> None:
    write_csv(run_dir / name, history.COLUMNS, history.rows())


def _checkpoint_epoch(run_dir: Path) -> int | None:
    try:
        return int(load_checkpoint(run_dir)[1]["epoch"])
    except Exception:  # noqa: BLE001 - no or unreadable checkpoint: nothing to report
        return None
