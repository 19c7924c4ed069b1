"""A training session: the runs of one program (their configs and seeds), their data sources
and the engine that trains them, ready to fit.

``train`` makes a session of one run; ``compare`` one per program group (repeats, and variants
whose shapes allow it, see :func:`program_key`). Every run keeps its own seed (initial weights,
data stream, dropout), learning rate, early stopping and history.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import backend
from ..config.program import program_key
from ..config.schema import Config, default_log_every
from ..config.variants import model_variant_name
from ..data.folds import member_seed
from ..data.prepare import TrainingData
from ..device import DeviceInfo, spread_over
from ..errors import UsageError
from ..model.build import build_model, member_prefix
from . import for_backend
from .base import Engine, Program, mean_scores
from .history import History
from .keras_model import copy_weights, load_into
from .loop import CopyProgress, FitCallbacks, FitPlan, FitResult, fit
from .network import Network, Segment, Trunk
from .optimizers import OptimizerSettings
from .terms import steps_per_call

# Keras' AdamW default (train.weight_decay: null)
ADAMW_WEIGHT_DECAY = 0.004


def optimizer_settings(config: Config, steps_per_epoch: int = 1) -> OptimizerSettings:
    """The update rule of a run: optimizer, weight decay, clipping, and the cosine schedule
    (decaying over the whole run, ``train.epochs`` x ``steps_per_epoch`` steps). Reduce-on-
    plateau is not part of it: the loop lowers each copy's base rate between calls."""
    train = config.train
    decay = 0.0
    if train.optimizer == "adamw":
        decay = ADAMW_WEIGHT_DECAY if train.weight_decay is None else train.weight_decay
    return OptimizerSettings(
        name=train.optimizer,
        weight_decay=decay,
        clipnorm=train.clipnorm,
        schedule="cosine" if train.schedule == "cosine" else "constant",
        decay_steps=max(1, train.epochs * steps_per_epoch),
        alpha=train.cosine_alpha,
    )


class TrainingSession:
    """The runs of one program (``configs[i]`` trained from ``seeds[i]``), ready to fit.

    Args:
        configs: each run's full config; all must share :func:`program_key`.
        seeds: each run's seed (its initial weights, data stream and dropout).
        data: the prepared data (shared: the validation split or folds come from the first seed).
        device: the selected device (``train.devices`` spreads one run over several).
    """

    def __init__(self, configs: Sequence[Config], seeds: Sequence[int], data: TrainingData, device: DeviceInfo):
        if len(configs) != len(seeds) or not configs:
            raise ValueError("one seed per run, and at least one run")
        keys = {program_key(config) for config in configs}
        if len(keys) > 1:
            raise ValueError("runs of one program must differ only in model variant, learning rate and seed")
        config = configs[0]
        self.configs, self.seeds, self.data = list(configs), [int(s) for s in seeds], data
        self.members = data.members  # models per run: a k-fold ensemble's, else 1
        self.log_every = config.train.log_every or default_log_every(config.train.epochs)
        # fixed-length data trains without the mask (same numbers, a simpler and faster
        # program); the saved model always has it, for variable-length input
        self.masked = data.variable_length
        self._set_streams(config.train.batch_size)
        if self.members > 1:  # each member validates on its own fold
            self.validation = data.fold_validation_batches()
        else:
            self.validation = data.validation_batches()
        self.test = data.test_batches()
        self.member_results: list[FitResult] = []  # the last fit's, one per engine copy
        source = self.sources[0]
        self.batch_shape = (source.batch_size, source.timesteps, data.spec.features)
        self.device = device = spread_over(device, config.train.devices, source.batch_size)
        if device.devices > 1 and len(configs) > 1:
            raise UsageError(
                f"train.devices={device.devices} is for bilstm train; compare trains each run on one device",
                "set train.devices=1 (compare.workers trains several runs at once)",
            )
        module = for_backend()
        per_device = source.batch_size // device.devices  # XLA's choice depends on the step each device runs
        self.offer = module.OFFER  # what this backend can do (see BackendOffer)
        if device.devices > 1 and not self.offer.data_parallel:
            raise UsageError(f"the {self.offer.name} backend cannot split one run over several devices")
        trunk = _trunk(config, data, self.masked)
        copies = len(self.copy_seeds)
        self.jit_compile = self.offer.always_xla or module.use_xla(
            config.train.jit_compile,
            device.kind,
            per_device,
            source.timesteps,
            trunk,
            copies=copies,
            total_steps=config.train.epochs * source.steps_per_epoch,
        )
        self.evaluation_xla = self.offer.always_xla or module.use_xla_in_evaluation(
            config.train.jit_compile, self.jit_compile, device.kind, source.timesteps, copies
        )
        scan = module.time_loop(source.timesteps, self.jit_compile)
        self.network = Network(trunk, _segments(self._copy_configs()), scan)
        program = Program(
            network=self.network,
            spec=data.spec,
            optimizer=optimizer_settings(config, source.steps_per_epoch),
            batch_shape=self.batch_shape,
            copy_streams=self._copy_streams(),
            steps_per_call=steps_per_call(
                source.steps_per_epoch, self.log_every, *self.batch_shape, runs=len(self.sources)
            ),
            standardization=data.standardization,
            # copies stop apart: early stopping, or a refit's own number of epochs
            freezable=copies > 1 and (config.train.early_stopping.enabled or config.train.refit.enabled),
        )
        self.engine: Engine = module.engine_class(device.devices)(
            program,
            seeds=self.copy_seeds,
            learning_rates=[c.train.learning_rate for c in self._copy_configs()],
            jit_compile=self.jit_compile,
            device=device,
            evaluation_jit_compile=self.evaluation_xla,
        )

    def _set_streams(self, batch_size: int) -> None:
        """Each engine copy's seed (a run's, or its ensemble members' own) and one data source
        per distinct (seed, member): copies of variants trained on the same seed share one."""
        members = self.members
        self.copy_folds = [fold for _ in self.seeds for fold in range(members)]
        self.copy_seeds = [
            member_seed(seed, fold) if members > 1 else seed for seed in self.seeds for fold in range(members)
        ]
        self.stream_keys = list(dict.fromkeys(zip(self.copy_seeds, self.copy_folds)))
        self.sources = [
            self.data.member_source(batch_size, seed, fold) if members > 1 else self.data.source(batch_size, seed)
            for seed, fold in self.stream_keys
        ]

    def _copy_configs(self) -> list[Config]:
        return [config for config in self.configs for _ in range(self.members)]

    def _copy_streams(self) -> tuple[int, ...]:
        return tuple(self.stream_keys.index(key) for key in zip(self.copy_seeds, self.copy_folds))

    def restart(self, configs: Sequence[Config], seeds: Sequence[int]) -> None:
        """Train other runs of the same structure (variants in the same order and numbers, as
        many data streams) with this session's compiled program: new seeds and learning rates."""
        streams = len(self.sources)
        if len(configs) != self.runs:
            raise ValueError("restart needs runs of the same structure")
        self.configs, self.seeds = list(configs), [int(s) for s in seeds]
        self._set_streams(configs[0].train.batch_size)
        if len(self.sources) != streams or self._copy_streams() != self.engine.program.copy_streams:
            raise ValueError("restart needs runs of the same structure")
        self.engine.restart(self.copy_seeds, [config.train.learning_rate for config in self._copy_configs()])

    @property
    def runs(self) -> int:
        """Runs in this session (each is ``members`` engine copies)."""
        return len(self.configs)

    def variant(self, copy: int = 0) -> str:
        return model_variant_name(self.configs[copy].model)

    def source(self, copy: int = 0):
        """The batch source of a run (its seed's data stream; an ensemble's first member's)."""
        return self.sources[self._copy_streams()[copy * self.members]]

    def compile(self) -> float:
        return self.engine.compile(self.validation)

    def plan(self, start_epoch: int = 0, copy_epochs: Sequence[int] | None = None) -> FitPlan:
        train = self.configs[0].train
        stopping = train.early_stopping
        for needs, key in (
            (stopping.enabled, "train.early_stopping"),
            (train.schedule == "plateau", "train.schedule=plateau"),
        ):
            if needs and self.validation is None:
                raise UsageError(
                    f"{key} needs validation data",
                    "give --val-data, data.validation_split or data.validation_size > 0",
                )
        return FitPlan(
            epochs=train.epochs,
            log_every=self.log_every,
            checkpoint_every=train.checkpoint_every,
            start_epoch=start_epoch,
            early_stopping_patience=stopping.patience if stopping.enabled else None,
            early_stopping_min_delta=stopping.min_delta,
            early_stopping_start_from=stopping.start_from,
            plateau_patience=train.plateau_patience if train.schedule == "plateau" else None,
            plateau_factor=train.plateau_factor,
            copy_epochs=copy_epochs,
        )

    def fit(
        self,
        callbacks: FitCallbacks | None = None,
        start_epoch: int = 0,
        progress: Sequence[CopyProgress] | None = None,
        copy_epochs: Sequence[int] | None = None,
    ) -> list[FitResult]:
        """Train every run from ``start_epoch`` (resume: with each run's saved ``progress``,
        which the loop updates in place so checkpoints can save it: one per engine copy); one
        result per run (a k-fold ensemble's: :func:`ensemble_result` of its members, whose own
        results are kept in :attr:`member_results`). ``copy_epochs``: each run's own last epoch
        (at most ``train.epochs``; a refit's)."""
        plan = self.plan(start_epoch, copy_epochs)
        members = self.members
        if members > 1 and callbacks is not None:  # the logged row: the mean of run 0's members
            callbacks = dataclasses.replace(callbacks, log_copies=tuple(range(members)))
        results = fit(self.engine, self.sources, plan, self.validation, callbacks, progress)
        self.member_results = results
        if members == 1:
            return results
        return [ensemble_result(results[run * members : (run + 1) * members]) for run in range(self.runs)]

    def validation_scores(self):
        """``(runs, 2)``: every run's validation loss and accuracy with its current weights, or
        None; an ensemble's: its members', each on its own fold, pooled (out-of-fold scores)."""
        scores = self.all_validation_scores()
        return None if scores is None else scores[0]

    def all_validation_scores(self):
        """``(runs' scores (runs, 2), members' scores (runs x members, 2))`` from one
        evaluation (each member on its own fold), or None without validation data."""
        if self.validation is None:
            return None
        totals = self.engine.evaluation_totals(self.validation)
        pooled = mean_scores(totals.reshape(self.runs, self.members, 3).sum(axis=1))
        return pooled, mean_scores(totals)

    def test_scores(self):
        """``(C, 2)``: every run's test loss and accuracy with its current weights (an
        ensemble's: its members' averaged probabilities), or None."""
        return self.engine.evaluate(self.test, self.members) if self.test is not None else None

    def model_to_save(self, copy: int = 0):
        """Run ``copy``'s trained weights in the plain Keras model (with the length mask); an
        ensemble's members side by side, averaged by its ``ensemble`` layer."""
        model = self._keras_model(copy)
        for member in range(self.members):
            engine_copy = copy * self.members + member
            weights = copy_weights(self.network, engine_copy, self.engine.copy_parameters(engine_copy))
            prefix = member_prefix(member, self.members)
            load_into(model, {prefix + name: arrays for name, arrays in weights.items()})
        return model

    def _keras_model(self, copy: int):
        """Run ``copy``'s plain Keras model (built once per copy and settings)."""
        settings = self.configs[copy].model
        cached = getattr(self, "_built", None)
        if cached is None or cached[0] != (copy, settings):
            with for_backend().placed(self.device):
                model = build_model(
                    settings, self.data.spec, self.data.standardization, masked=True, members=self.members
                )
            self._built = cached = ((copy, settings.model_copy()), model)
        return cached[1]

    def model_summary(self, copy: int = 0) -> dict[str, Any]:
        """The saved model's layers (name, type, trainable parameters) and their total."""
        layers = []
        for layer in self._keras_model(copy).layers:
            kind = type(layer).__name__
            if kind == "InputLayer":
                continue
            if kind == "Bidirectional":
                kind = f"Bidirectional({type(layer.forward_layer).__name__}, {layer.merge_mode})"
            count = sum(int(np.prod(weight.shape)) for weight in layer.trainable_weights)
            layers.append({"name": layer.name, "type": kind, "parameters": count})
        return {"layers": layers, "parameters": sum(layer["parameters"] for layer in layers)}

    def parameter_count(self, copy: int = 0) -> int:
        copies = range(copy * self.members, (copy + 1) * self.members)
        return int(sum(array.size for member in copies for array in self.engine.copy_parameters(member)))

    def metrics(
        self,
        result: FitResult,
        compile_seconds: float,
        wall_seconds: float,
        copy: int = 0,
        scores: tuple[Any, Any] | None = None,
    ) -> dict[str, Any]:
        """What metrics.json records about a finished run. ``scores``: every run's validation
        and test scores (``(runs, 2)`` or None each) and, for ensembles, the members' validation
        scores (:meth:`all_validation_scores`), when the caller has them already."""
        history = result.history
        if scores is None:
            validation, member_scores = self.all_validation_scores() or (None, None)
            test = self.test_scores()
        else:
            validation, test, member_scores = (*scores, None)[:3]
        final_val = (None, None)
        if validation is not None:
            final_val = tuple(float(v) for v in validation[copy])
        test_metrics = {}
        if test is not None:
            test_metrics = {
                "test_loss": float(test[copy, 0]),
                "test_accuracy": float(test[copy, 1]),
                "test_sequences": self.data.test.size,
            }
        epochs_here = max(1, len(history))
        steps = self.sources[0].steps_per_epoch * epochs_here
        folds = {}
        if self.members > 1:
            folds = {"folds": self.fold_summary(copy, member_scores)}
        return {
            "variant": self.variant(copy),
            "seed": self.seeds[copy],
            "epochs_run": result.epochs_run,
            "stopped": result.stopped,
            "best_epoch": result.best_epoch,
            "final": {
                "loss": history.loss[-1] if history.loss else None,
                "accuracy": history.accuracy[-1] if history.accuracy else None,
                "val_loss": final_val[0],
                "val_accuracy": final_val[1],
                "validation_sequences": self._validation_sequences(),
                **test_metrics,
            },
            **folds,
            "parameters": self.parameter_count(copy),
            "model": self.model_summary(copy),
            "device": {**self.device.to_dict(), "xla": self.jit_compile, "xla_evaluation": self.evaluation_xla},
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

    def _validation_sequences(self) -> int:
        if self.members > 1:  # every training sequence validates one member
            return self.data.train_size
        return self.data.validation.size if self.data.validation is not None else 0

    def fold_summary(self, copy: int = 0, scores=None) -> dict[str, Any]:
        """An ensemble's members (after :meth:`fit`): folds, sequences, epochs and fold scores
        (``scores``: the members' of :meth:`all_validation_scores`, when the caller has them)."""
        members, data = self.members, self.data
        if scores is None:
            scores = self.all_validation_scores()[1]
        rows = []
        for fold in range(members):
            engine_copy = copy * members + fold
            result = self.member_results[engine_copy]
            rows.append(
                {
                    "fold": fold,
                    "seed": self.copy_seeds[engine_copy],
                    "train_sequences": data.train_size - len(data.folds[fold]),
                    "validation_sequences": len(data.folds[fold]),
                    "epochs_run": result.epochs_run,
                    "stopped": result.stopped,
                    "best_epoch": result.best_epoch,
                    "val_loss": float(scores[engine_copy, 0]) if scores is not None else None,
                    "val_accuracy": float(scores[engine_copy, 1]) if scores is not None else None,
                }
            )
        return {"k": members, "members": rows}


def ensemble_result(members: Sequence[FitResult]) -> FitResult:
    """A k-fold ensemble's run as one result: the members' mean history (see
    :meth:`History.mean`), its longest member's epochs, interrupted if any was, stopped early
    if all were; no best epoch (each member keeps its own)."""
    stopped = [result.stopped for result in members]
    if "interrupted" in stopped:
        verdict = "interrupted"
    else:
        verdict = "early-stopping" if all(s == "early-stopping" for s in stopped) else None
    return FitResult(
        History.mean([result.history for result in members]),
        max(result.epochs_run for result in members),
        verdict,
        None,
        max(result.train_seconds for result in members),
    )


def _trunk(config: Config, data: TrainingData, masked: bool) -> Trunk:
    model = config.model
    return Trunk(
        cell=model.cell,
        units=model.units,
        layers=model.layers,
        features=data.spec.features,
        num_classes=data.spec.num_classes,
        task=data.spec.task,
        pooling=model.pooling,
        dropout=model.dropout,
        masked=masked,
    )


def _segments(configs: Sequence[Config]) -> list[Segment]:
    """Consecutive runs of the same model variant form one segment."""
    segments: list[Segment] = []
    previous = None
    for config in configs:
        model = config.model
        variant = (model.kind, model.direction, model.merge)
        if variant == previous:
            last = segments[-1]
            segments[-1] = Segment(last.kind, last.direction, last.merge, last.copies + 1)
        else:
            segments.append(Segment(model.kind, model.direction, model.merge, 1))
        previous = variant
    return segments
