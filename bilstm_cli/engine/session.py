"""A training session: one config's model, data source and engine, ready to fit.

Shared by ``train`` (one run) and ``compare`` (many repeats of one variant, compiled once).
"""

from __future__ import annotations

import platform
from typing import Any

import numpy as np

from .. import __version__, backend
from ..config.schema import Config
from ..config.variants import model_variant_name
from ..data.prepare import TrainingData
from ..device import DeviceInfo, draw_seed, seed_everything
from ..errors import UsageError
from ..model.build import build_model
from . import for_backend
from .loop import FitCallbacks, FitPlan, FitResult, fit, fit_repeats
from .terms import steps_per_call

ROWS_TO_LOG = 20  # default number of logged rows (and validation points) per run


def default_log_every(epochs: int) -> int:
    return max(1, epochs // ROWS_TO_LOG)


def recordable(config: Config) -> Config:
    """The config with what was left open fixed, for recording: the seed (drawn at random if
    none was given) and the backend (the one selected for this process)."""
    resolved = config.model_copy(deep=True)
    if resolved.train.seed is None:
        resolved.train.seed = draw_seed()
    resolved.train.backend = backend.name()
    return resolved


class TrainingSession:
    """A model and engine for one config, ready to fit (shared by train and compare)."""

    def __init__(self, config: Config, data: TrainingData, device: DeviceInfo, seed: int):
        self._engine_module = for_backend()
        TrainingEngine, use_xla = self._engine_module.TrainingEngine, self._engine_module.use_xla

        self.config = config
        self.data = data
        self.device = device
        self.seed = seed
        self.log_every = config.train.log_every or default_log_every(config.train.epochs)
        # fixed-length data trains without the mask (same numbers, a simpler and faster
        # compiled program); the saved model always has it, for variable-length input
        self.masked = data.variable_length
        self.source = data.source(config.train.batch_size, seed)
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
            device=device,
        )

    @property
    def variant(self) -> str:
        return model_variant_name(self.config.model)

    def _build(self, masked: bool):
        with self._engine_module.placed(self.device):
            return build_model(self.config.model, self.data.spec, self.data.standardization, masked=masked)

    def initial_model(self, seed: int):
        """The freshly initialised model of a given seed (same seed, same weights)."""
        seed_everything(seed)
        return self._build(self.masked)

    def model_to_save(self):
        """The trained model with length masking, whatever the training graph used."""
        if self.masked:
            return self.engine.model
        model = self._build(masked=True)
        model.set_weights(self.engine.model.get_weights())
        return model

    def compile(self) -> float:
        return self.engine.compile(self.batch_shape, self.validation)

    def restart(self, seed: int) -> None:
        """Reinitialise weights and optimizer for another seed, keeping the compiled calls."""
        self.seed = seed
        self.source = self.data.source(self.config.train.batch_size, seed)
        self.engine.reset(self.initial_model(seed))

    def _plan(self, start_epoch: int = 0) -> FitPlan:
        train = self.config.train
        stopping = train.early_stopping
        if stopping.enabled and self.validation is None:
            raise UsageError(
                "train.early_stopping needs validation data",
                "give --val-data, data.validation_split or data.validation_size > 0",
            )
        return FitPlan(
            epochs=train.epochs,
            log_every=self.log_every,
            checkpoint_every=train.checkpoint_every,
            start_epoch=start_epoch,
            early_stopping_patience=stopping.patience if stopping.enabled else None,
            early_stopping_min_delta=stopping.min_delta,
        )

    def fit(self, on_log, on_progress, on_checkpoint, should_stop, start_epoch: int = 0, history=None) -> FitResult:
        callbacks = FitCallbacks(on_log, on_progress, on_checkpoint, should_stop)
        return fit(self.engine, self.source, self._plan(start_epoch), self.validation, callbacks, history)

    @property
    def trains_repeats_together(self) -> bool:
        """Whether the backend can train several repeats as one program (JAX: vmap)."""
        return hasattr(self._engine_module, "RepeatsEngine")

    def fit_repeats(self, seeds: list[int], should_stop) -> list[FitResult]:
        """Train one run per seed, all at once (see :func:`~bilstm_cli.engine.loop.fit_repeats`):
        each keeps its own initial weights, optimizer state and data stream."""
        initial_models = [self.initial_model(seed) for seed in seeds]
        engine = self._engine_module.RepeatsEngine(self.engine, initial_models)
        sources = [self.data.source(self.config.train.batch_size, seed) for seed in seeds]
        return fit_repeats(engine, sources, self._plan(), self.validation, should_stop)

    def metrics(self, result: FitResult, compile_seconds: float, wall_seconds: float) -> dict[str, Any]:
        """What metrics.json records about a finished run."""
        history = result.history
        final_val = self.engine.evaluate(self.validation) if self.validation is not None else (None, None)
        epochs_here = max(1, len(history))
        steps = self.source.steps_per_epoch * epochs_here
        return {
            "variant": self.variant,
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
            "backend": backend.name(),
            "versions": {
                "bilstm": __version__,
                backend.name(): backend.version(),
                "keras": backend.keras.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },
        }
