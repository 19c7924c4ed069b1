"""A training session: one config's model, data source and engine, ready to fit.

Shared by ``train`` (one run) and ``compare`` (many repeats of one variant, compiled once).
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..config.schema import Config
from ..config.variants import model_variant_name
from ..data.prepare import TrainingData
from ..device import DeviceInfo, seed_everything, spread_over
from ..errors import UsageError
from ..model.build import build_model
from ..seeds import draw_seed
from . import for_backend
from .loop import EarlyStoppingState, FitCallbacks, FitPlan, FitResult, fit, fit_repeats
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
        self.seed = seed
        self.log_every = config.train.log_every or default_log_every(config.train.epochs)
        # fixed-length data trains without the mask (same numbers, a simpler and faster
        # compiled program); the saved model always has it, for variable-length input
        self.masked = data.variable_length
        self.source = data.source(config.train.batch_size, seed)
        self.validation = data.validation_batches()
        self.test = data.test_batches()
        batch = self.source.batch_size
        self.batch_shape = (batch, self.source.timesteps, data.spec.features)
        # several devices (train.devices): the first N of the selected kind, each step's batch split across them
        self.device = device = spread_over(device, config.train.devices, batch)
        if device.devices > 1:
            TrainingEngine = self._engine_module.DataParallelEngine
        per_device = batch // device.devices  # XLA's choice depends on the step each device runs
        self.jit_compile = use_xla(config.train.jit_compile, device.kind, per_device, self.source.timesteps)
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
        self._refuse_several_devices()
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

    def fit(
        self,
        on_log,
        on_progress,
        on_checkpoint,
        should_stop,
        start_epoch: int = 0,
        history=None,
        early_stopping: EarlyStoppingState | None = None,
    ) -> FitResult:
        """Train from ``start_epoch`` (resume: with the saved ``history`` and ``early_stopping``
        state, which the loop updates in place so checkpoints can save it)."""
        callbacks = FitCallbacks(on_log, on_progress, on_checkpoint, should_stop)
        plan = self._plan(start_epoch)
        return fit(self.engine, self.source, plan, self.validation, callbacks, history, early_stopping)

    @property
    def trains_repeats_together(self) -> bool:
        """Whether the backend can train several repeats as one program (JAX: vmap)."""
        return hasattr(self._engine_module, "RepeatsEngine")

    def fit_repeats(self, seeds: list[int], should_stop) -> tuple[list[FitResult], list[tuple[float, float]] | None]:
        """Train one run per seed, all at once (see :func:`~bilstm_cli.engine.loop.fit_repeats`):
        each keeps its own initial weights, optimizer state and data stream. Returns the results
        and, with a test set, every run's test loss and accuracy."""
        self._refuse_several_devices()
        initial_models = [self.initial_model(seed) for seed in seeds]
        window = steps_per_call(
            self.source.steps_per_epoch, self.log_every, *self.batch_shape, runs=len(seeds)
        )  # R runs' batches go into each call: the same memory bound as one run
        engine = self._engine_module.RepeatsEngine(self.engine, initial_models, min(window, self.engine.steps_per_call))
        sources = [self.data.source(self.config.train.batch_size, seed) for seed in seeds]
        results = fit_repeats(engine, sources, self._plan(), self.validation, should_stop)
        return results, engine.evaluate(self.test) if self.test is not None else None

    def _refuse_several_devices(self) -> None:
        """Repeats (compare) train on one device each: ``train.devices`` is for one ``train`` run."""
        if self.device.devices > 1:
            raise UsageError(
                f"train.devices={self.device.devices} is for bilstm train; compare trains each run on one device",
                "set train.devices=1 (compare.workers trains several runs at once)",
            )

    def retarget(self, config: Config) -> None:
        """Train the next runs with ``config``, keeping the compiled calls. Only settings that do
        not change the compiled program may differ (learning rate, epochs, log interval: see
        :data:`bilstm_cli.compare.plan.SHARED_PROGRAM_KEYS`)."""
        self.config = config
        self.log_every = config.train.log_every or default_log_every(config.train.epochs)
        self.engine.set_learning_rate(config.train.learning_rate)

    def _test_metrics(self) -> dict[str, Any]:
        scores = self.test_scores()
        if scores is None:
            return {}
        return {"test_loss": scores[0], "test_accuracy": scores[1], "test_sequences": self.data.test.size}

    def test_scores(self) -> tuple[float, float] | None:
        """Loss and accuracy of the current weights on the test set, if there is one."""
        return self.engine.evaluate(self.test) if self.test is not None else None

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
                **self._test_metrics(),
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
            "versions": backend.versions(),
        }
