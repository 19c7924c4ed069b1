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
from ..engine.session import TrainingSession, ensemble_result
from ..errors import Interrupted, UsageError
from ..fileio import atomic
from ..fileio.files import write_csv, write_json
from ..model.build import member_prefix
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

    data = prepare_training_data(config.data, seed, config.train.class_weight, files=files, folds=config.train.folds)
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
    if config.train.folds and session.members == 1:
        reporter.message(
            f"train.folds={config.train.folds} does not apply: {config.data.train_path} is streamed "
            "(larger than data.memory_limit); one model, validated on data.validation_split"
        )
    if session.members > 1:
        fewer = (
            f" (train.folds={config.train.folds}: one fold per sequence)"
            if session.members < config.train.folds
            else ""
        )
        reporter.message(
            f"k-fold ensemble: {session.members} models, each trained on all but one fold of "
            f"{data.train_size} sequences and early-stopped on that fold{fewer}"
        )
    compile_seconds = session.compile()
    progress, start_epoch = [CopyProgress() for _ in range(session.members)], 0
    if checkpoint_state is not None:
        session.engine.load_state(checkpoint_state)
        start_epoch = int(checkpoint_meta["epoch"])
        partial = _restore_progress(progress, run_dir, checkpoint_meta, best_state)
        if finishing:
            # the finished checkpoint holds the final weights (early stopping's best already restored)
            reporter.message(f"{run_dir} finished at epoch {start_epoch}; writing its missing model and metrics")
            result = _finished_result(session, progress, start_epoch, config.train.epochs)
            return _save_outputs(run_dir, session, result, compile_seconds, started)
        within = f" (step {partial} of epoch {start_epoch + 1})" if partial else ""
        reporter.message(f"resuming at epoch {start_epoch}/{config.train.epochs}{within}")
    refits = refit_applies(config)
    result = run.phase(session, progress, start_epoch, {}, events=True, finish=not refits)
    if not refits:
        return _save_outputs(run_dir, session, result, compile_seconds, started)
    _write_history(run_dir, result.history)  # the validation phase's (a finished phase wrote its own)
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


def _restore_progress(
    progress: list[CopyProgress], run_dir: Path, meta: dict, best_state: list[np.ndarray] | None
) -> int:
    """Each copy's history, early stopping, plateau and partial epoch from a checkpoint (one
    copy, or an ensemble's members: meta ``members``); returns the partial epoch's steps."""
    if len(progress) == 1:
        (only,) = progress
        only.history = History.from_dict(meta["history"])
        only.stopping = EarlyStoppingState.from_meta(meta.get("early_stopping"), best_state)
        only.plateau = PlateauState.from_meta(meta.get("plateau"))
        return _restore_partial_epoch(only, run_dir, meta)
    best = list(best_state or [])
    for copy, saved in zip(progress, meta["members"]):
        count = int(saved["best_arrays"])
        copy.history = History.from_dict(saved["history"])
        copy.stopping = EarlyStoppingState.from_meta(saved["early_stopping"], best[:count] or None)
        best = best[count:]
        copy.plateau = PlateauState.from_meta(saved["plateau"])
        copy.stopped = saved["stopped"]
        copy.epochs_run = int(saved["epochs_run"])
        copy.partial = [np.asarray(saved["partial"], np.float32).reshape(-1, 3)] if saved["partial"] else []
    return max(copy.partial_steps for copy in progress)


def _progress_meta(progress: list[CopyProgress], epoch: int) -> tuple[dict, list[np.ndarray], np.ndarray | None]:
    """What a checkpoint saves of every copy's progress at ``epoch``: (meta entries, early
    stopping's best arrays, the partial epoch's results of a single copy)."""
    if len(progress) == 1:
        (only,) = progress
        partial = only.partial_results() if epoch == only.epochs_run else None
        meta = {"early_stopping": only.stopping.to_meta(), "plateau": only.plateau.to_meta()}
        return meta, only.stopping.best_state or [], partial
    members, best = [], []
    for copy in progress:
        partial = copy.partial_results() if epoch == copy.epochs_run and copy.stopped is None else None
        best_arrays = copy.stopping.best_state or []
        best.extend(best_arrays)
        members.append(
            {
                "history": copy.history.to_dict(),
                "early_stopping": copy.stopping.to_meta(),
                "plateau": copy.plateau.to_meta(),
                "stopped": copy.stopped,
                "epochs_run": copy.epochs_run,
                "best_arrays": len(best_arrays),
                # float32 values survive JSON exactly, so a resumed epoch records the same scores
                "partial": partial.tolist() if partial is not None and len(partial) else [],
            }
        )
    return {"members": members}, best, None


def _finished_result(session: TrainingSession, progress: list[CopyProgress], epoch: int, epochs: int) -> FitResult:
    """The result of a run whose finished checkpoint (at ``epoch``) is being turned into outputs."""
    results = []
    for copy in progress:
        elapsed = copy.history.elapsed[-1] if copy.history.elapsed else 0.0
        if len(progress) == 1:  # one copy's checkpoint does not record these: its epoch tells
            stopped, epochs_run = ("early-stopping" if epoch < epochs else None), epoch
        else:
            stopped, epochs_run = copy.stopped, copy.epochs_run
        results.append(FitResult(copy.history, epochs_run, stopped, copy.stopping.best_epoch, elapsed))
    session.member_results = results
    return results[0] if len(results) == 1 else ensemble_result(results)


def _write_histories(run_dir: Path, history: History, progress: list[CopyProgress], name: str) -> None:
    """``name`` (history.csv, or the refit's) and, for a k-fold ensemble, ``history-folds.csv``:
    every member's epochs with its fold (``history`` is their mean)."""
    _write_history(run_dir, history, name)
    if len(progress) > 1:
        rows = [(fold, *row) for fold, copy in enumerate(progress) for row in copy.history.rows()]
        write_csv(run_dir / FOLD_HISTORY, ("fold", *History.COLUMNS), rows)


def _run_history(progress: list[CopyProgress]) -> History:
    """The run's history: its one copy's, or an ensemble's members' mean (see :meth:`History.mean`)."""
    return progress[0].history if len(progress) == 1 else History.mean([copy.history for copy in progress])


def _steps_in_progress(progress: list[CopyProgress], epoch: int) -> int:
    """Steps trained of the epoch after ``epoch`` (a checkpoint taken part-way through it)."""
    return max(
        (copy.partial_steps for copy in progress if copy.stopped is None and copy.epochs_run == epoch), default=0
    )


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
        progress: list[CopyProgress],
        start_epoch: int,
        meta_extra: dict,
        events: bool,
        finish: bool,
        history_file: str = directory.HISTORY,
    ) -> FitResult:
        """Train ``session`` from ``start_epoch`` with checkpoints (their meta with
        ``meta_extra``); the last checkpoint is marked finished when ``finish``."""
        run_dir, reporter, config = self.run_dir, self.reporter, session.configs[0]

        def checkpoint(epoch: int, _copy_history: History | None = None, finished: bool = False) -> None:
            """(The loop passes copy 0's history; the run's comes from ``progress``.)"""
            state = session.engine.state()
            current_history = _run_history(progress)  # an ensemble's: the members' mean (each is in the meta)
            progress_meta, best, partial = _progress_meta(progress, epoch)
            if not all(np.isfinite(value).all() for value in state if value.dtype.kind == "f"):
                # never replace the last good checkpoint with broken weights
                if _steps_in_progress(progress, epoch):  # part-way through epoch + 1: it broke them
                    raise NonFiniteLoss(epoch + 1, current_history)
                raise NonFiniteLoss(epoch, current_history.truncate(len(current_history) - 1))
            meta = {
                "epoch": epoch,
                "seed": config.train.seed,
                "history": current_history.to_dict(),
                "finished": finished,
                **progress_meta,
                **meta_extra,
            }
            if partial is not None and len(partial):
                meta["partial_steps"] = len(partial)
            save_checkpoint(run_dir, state, meta, best or None, partial)

        recorded = stdin_data.recorded_config(self.config, self.found)
        log = _open_events(recorded, run_dir, start_epoch) if events else None

        def on_log(record) -> None:
            reporter.on_log(record)
            if log is not None:
                log.write_epochs(_columns(_run_history(progress)), record.epoch)

        if meta_extra and start_epoch == 0:
            checkpoint(0)  # a run stopped before the phase's first checkpoint resumes it
        reporter.start(start_epoch)
        written = _run_history(progress)  # the epochs to put in the event files, however training ends
        try:
            with StopRequest(STOPPING) as stop:
                # the early-stopping state comes in on resume, and the checkpoint callback saves it
                callbacks = FitCallbacks(on_log, reporter.on_progress, checkpoint, lambda: stop.requested)
                (result,) = session.fit(callbacks, start_epoch, progress)
                written = result.history
        except Exception as exc:
            reporter.close()
            if isinstance(exc, NonFiniteLoss):
                if len(progress) > 1:  # every member up to the last good epoch; their mean
                    for copy in progress:
                        copy.history = copy.history.truncate(min(len(copy.history), exc.epoch - 1))
                    exc.history = _run_history(progress)
                written = exc.history
                _write_histories(run_dir, exc.history, progress, history_file)
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
            _write_histories(run_dir, result.history, progress, history_file)
            checkpoint(result.epochs_run)
            raise Interrupted(
                f"interrupted at epoch {result.epochs_run}/{config.train.epochs}"
                f"{' of the refit' if meta_extra else ''}; checkpoint and history saved in {run_dir}",
                f"resume with: bilstm train --resume {run_dir}",
            )
        if finish:  # the histories before the finished checkpoint: a resume to write outputs has them
            _write_histories(run_dir, result.history, progress, history_file)
            checkpoint(result.epochs_run, finished=True)
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
        progress = [progress]
        if hasattr(reporter, "set_total"):
            reporter.set_total(config.train.epochs)
        reporter.message(
            f"refit: {config.train.epochs} epochs on all {data.train_size} training sequences "
            f"(best validation epoch {selection['best_epoch']})"
            + (f", resuming at epoch {start_epoch}" if start_epoch else "")
        )
        if checkpoint is not None and checkpoint[1].get("finished"):
            result = FitResult(progress[0].history, start_epoch, None, None, 0.0)
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
FOLD_HISTORY = "history-folds.csv"  # a k-fold ensemble's members, one row per fold and epoch


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
    """``model: length_mask LengthMask, bilstm_0 Bidirectional(LSTM, concat) 3,520, ...; 3,561 parameters``;
    a k-fold ensemble's members once: ``5 x (bilstm_0 ..., head Dense 387), ensemble Average``."""

    def text(layer: dict, name: str) -> str:
        return f"{name} {layer['type']}" + (f" {layer['parameters']:,}" if layer["parameters"] else "")

    first = member_prefix(0, 2)  # the first member's layers stand for all of them
    layers = summary["layers"]
    shared = [text(layer, layer["name"]) for layer in layers if not layer["name"].startswith("fold")]
    member = [text(layer, layer["name"][len(first) :]) for layer in layers if layer["name"].startswith(first)]
    if member:
        members = sum(1 for layer in layers if layer["name"].startswith("fold") and layer["name"].endswith("_head"))
        shared.insert(len(shared) - 1, f"{members} x ({', '.join(member)})")  # before the ensemble layer
    return f"model: {', '.join(shared)}; {summary['parameters']:,} parameters"


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
