"""``bilstm train``: one training run into a run directory, resumable."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .. import __version__, runs
from ..config import Config
from ..device import DeviceInfo, draw_seed, seed_everything, select_device
from ..errors import Interrupted, UsageError
from ..signals import StopRequest
from ..training_data import TrainingData, prepare_training_data

ROWS_TO_LOG = 20  # default number of logged rows (and validation points) per run


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


def default_log_every(epochs: int) -> int:
    return max(1, epochs // ROWS_TO_LOG)


def with_seed(config: Config) -> Config:
    """The config with its seed fixed (drawn at random if none was given), for recording."""
    resolved = config.model_copy(deep=True)
    if resolved.train.seed is None:
        resolved.train.seed = draw_seed()
    return resolved


def run_train(config: Config, reporter: Reporter, out: str | None = None, resume: str | None = None) -> TrainResult:
    """Train the configured model and save the run directory.

    Args:
        config: the resolved config (its seed is drawn if missing and recorded).
        reporter: receives progress and logged rows (the CLI renders them).
        out: explicit run directory; default ``output.root/output.name``.
        resume: a run directory with a checkpoint to continue (its saved config is used).
    """
    started = time.perf_counter()
    checkpoint_state, checkpoint_meta = None, None
    if resume is not None:
        run_dir = Path(resume)
        checkpoint_state, checkpoint_meta = runs.load_checkpoint(run_dir)
        if checkpoint_meta.get("finished"):
            raise UsageError(f"{run_dir} already finished (at epoch {checkpoint_meta['epoch']}): nothing to resume")
    else:
        config = with_seed(config)
    seed = config.train.seed
    data = prepare_training_data(config, seed)  # bad data fails here, before anything is written
    device = select_device(config.train.device)

    if resume is None:
        run_dir = runs.prepare_run_directory(
            runs.run_directory(config.output, config.model.variant, out), config.output.overwrite
        )
        runs.save_config(run_dir, config)
        runs.write_json(run_dir / runs.DATA_SPEC, data.describe())

    session = TrainingSession(config, data, device, seed)
    reporter.message(
        f"training {config.model.variant} on {device.description} "
        f"(XLA {'on' if session.jit_compile else 'off'}, seed {seed}) -> {run_dir}"
    )
    compile_seconds = session.compile()
    history, start_epoch = None, 0
    if checkpoint_state is not None:
        session.engine.load_state(checkpoint_state)
        from ..training import History

        history = History.from_dict(checkpoint_meta["history"])
        start_epoch = int(checkpoint_meta["epoch"])
        reporter.message(f"resuming at epoch {start_epoch}/{config.train.epochs}")

    def save_checkpoint(epoch: int, current_history, finished: bool = False) -> None:
        state = session.engine.state()
        if not all(np.isfinite(value).all() for value in state if value.dtype.kind == "f"):
            from ..training import NonFiniteLoss

            # never replace the last good checkpoint with broken weights
            raise NonFiniteLoss(epoch, current_history.truncate(len(current_history) - 1))
        meta = {"epoch": epoch, "seed": seed, "history": current_history.to_dict(), "finished": finished}
        runs.save_checkpoint(run_dir, state, meta)

    reporter.start(start_epoch)
    try:
        with StopRequest("stopping at the next safe point to save a checkpoint (press again to quit at once)") as stop:
            result = session.fit(reporter, save_checkpoint, lambda: stop.requested, start_epoch, history)
    except Exception as exc:
        from ..training import NonFiniteLoss

        reporter.close()
        if isinstance(exc, NonFiniteLoss):
            _write_history(run_dir, exc.history)
            good = _checkpoint_epoch(run_dir)
            exc.message += f"; history saved up to epoch {exc.epoch - 1}" + (
                f", last good checkpoint at epoch {good}" if good is not None else ""
            )
        raise
    reporter.close()

    _write_history(run_dir, result.history)
    if result.stopped == "interrupted":
        save_checkpoint(result.epochs_run, result.history)
        raise Interrupted(
            f"interrupted at epoch {result.epochs_run}/{config.train.epochs}; "
            f"checkpoint and history saved in {run_dir}",
            f"resume with: bilstm train --resume {run_dir}",
        )
    save_checkpoint(result.epochs_run, result.history, finished=True)
    metrics = session.metrics(result, compile_seconds, time.perf_counter() - started)
    runs.save_model(run_dir, session.model_to_save())
    runs.write_json(run_dir / runs.METRICS, metrics)
    from ..plots import plot_history

    plot_history(result.history, run_dir / runs.PLOT, f"{config.model.variant} (seed {seed})")
    return TrainResult(run_dir, metrics)


def _write_history(run_dir: Path, history) -> None:
    runs.write_csv(run_dir / runs.HISTORY, history.COLUMNS, history.rows())


def _checkpoint_epoch(run_dir: Path) -> int | None:
    try:
        return int(runs.load_checkpoint(run_dir)[1]["epoch"])
    except Exception:  # noqa: BLE001 - no or unreadable checkpoint: nothing to report
        return None


class TrainingSession:
    """A model and engine for one config, ready to fit (shared by train and compare)."""

    def __init__(self, config: Config, data: TrainingData, device: DeviceInfo, seed: int):
        from ..training import TrainingEngine, steps_per_call, use_xla

        self.config = config
        self.data = data
        self.device = device
        self.seed = seed
        self.log_every = config.train.log_every or default_log_every(config.train.epochs)
        # fixed-length data trains without the mask (same numbers, a simpler and faster
        # compiled program); the saved model always has it, for variable-length input
        self.masked = data.variable_length
        self.source = data.source(config, seed)
        self.validation = data.validation_batches()
        batch = self.source.batch_size
        self.batch_shape = (batch, self.source.timesteps, data.spec.features)
        self.jit_compile = use_xla(config.train.jit_compile, device.kind, batch, self.source.timesteps)
        self.engine = TrainingEngine(
            self.initial_model(seed),
            data.spec,
            optimizer=config.train.optimizer,
            learning_rate=config.train.learning_rate,
            jit_compile=self.jit_compile,
            steps_per_call=steps_per_call(self.source.steps_per_epoch, self.log_every, *self.batch_shape),
            device=device.name,
        )

    def initial_model(self, seed: int):
        """The freshly initialised model of a given seed (same seed, same weights)."""
        import tensorflow as tf

        from ..models import build_model

        seed_everything(seed)
        with tf.device(self.device.name):
            return build_model(self.config.model, self.data.spec, self.data.standardization, masked=self.masked)

    def model_to_save(self):
        """The trained model with length masking, whatever the training graph used."""
        if self.masked:
            return self.engine.model
        import tensorflow as tf

        from ..models import build_model

        with tf.device(self.device.name):
            model = build_model(self.config.model, self.data.spec, self.data.standardization, masked=True)
        model.set_weights(self.engine.model.get_weights())
        return model

    def compile(self) -> float:
        return self.engine.compile(self.batch_shape, self.validation)

    def restart(self, seed: int) -> None:
        """Reinitialise weights and optimizer for another seed, keeping the compiled calls."""
        self.seed = seed
        self.source = self.data.source(self.config, seed)
        self.engine.reset(self.initial_model(seed))

    def fit(self, reporter, on_checkpoint, should_stop, start_epoch: int = 0, history=None):
        from ..training import FitCallbacks, FitPlan, fit

        train = self.config.train
        stopping = train.early_stopping
        if stopping.enabled and self.validation is None:
            raise UsageError(
                "train.early_stopping needs validation data",
                "give --val-data, data.validation_split or data.validation_size > 0",
            )
        plan = FitPlan(
            epochs=train.epochs,
            log_every=self.log_every,
            checkpoint_every=train.checkpoint_every,
            start_epoch=start_epoch,
            early_stopping_patience=stopping.patience if stopping.enabled else None,
            early_stopping_min_delta=stopping.min_delta,
        )
        callbacks = FitCallbacks(reporter.on_log, reporter.on_progress, on_checkpoint, should_stop)
        return fit(self.engine, self.source, plan, self.validation, callbacks, history)

    def metrics(self, result, compile_seconds: float, wall_seconds: float) -> dict[str, Any]:
        import keras
        import tensorflow as tf

        history = result.history
        final_val = self.engine.evaluate(self.validation) if self.validation is not None else (None, None)
        epochs_here = max(1, len(history))
        steps = self.source.steps_per_epoch * epochs_here
        return {
            "variant": self.config.model.variant,
            "seed": self.seed,
            "epochs_run": result.epochs_run,
            "stopped": result.stopped,
            "best_epoch": result.best_epoch,
            "final": {
                "loss": history.loss[-1] if history.loss else None,
                "accuracy": history.accuracy[-1] if history.accuracy else None,
                "val_loss": final_val[0],
                "val_accuracy": final_val[1],
                "validation_sequences": self.data.validation.size if self.data.validation is not None else 0,
            },
            "parameters": int(self.engine.model.count_params()),
            "device": {**self.device.to_dict(), "xla": self.jit_compile},
            "timing": {
                "wall_seconds": wall_seconds,
                "compile_seconds": compile_seconds,
                "train_seconds": result.train_seconds,
                "steps": steps,
                "ms_per_step": 1000 * result.train_seconds / max(1, steps),
            },
            "versions": {
                "bilstm": __version__,
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },
        }
