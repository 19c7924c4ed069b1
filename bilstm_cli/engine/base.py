"""The engine contract: what both backends share, and the small part each one implements.

An engine trains a *program*: the C runs (copies) of :class:`~bilstm_cli.engine.network.Network`
as one compiled computation, many optimizer steps per call. :class:`Engine` owns everything
that does not depend on the backend: the state (weights, optimizer slots, step counts), chunking
steps into calls of a fixed shape, per-copy learning rates and freezing (early stopping), state
snapshots for checkpoints and best weights, and the pure training step itself (written with
``keras.ops``). A backend module subclasses it and implements only:

- :meth:`Engine._compile_chunk`: the compiled loop of optimizer steps (gradients included);
- :meth:`Engine._compile_evaluation`: the compiled scoring of evaluation batches (per copy, or per ensemble);
- :meth:`Engine._to_backend` / :meth:`Engine._to_numpy`: moving arrays in and out;
- :meth:`Engine._uniform`: per-copy random numbers for dropout;

and describes what it offers in a :class:`BackendOffer`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..backend import ops
from ..data.batches import Batches
from ..data.dataset import PER_STEP
from ..data.spec import ModelSpec
from ..errors import TrainingError

if TYPE_CHECKING:
    from ..data.streamed import StreamedBatches
from .initializers import initial_parameters
from .network import Network
from .optimizers import OptimizerSettings, apply_updates, initial_slots, learning_rates_at_steps
from .terms import batch_terms


@dataclass(frozen=True)
class BackendOffer:
    """What a backend's engine can do, read by the session instead of probing attributes.

    Args:
        name: ``tensorflow`` or ``jax``.
        always_xla: every program is XLA-compiled (JAX); else XLA is a choice per program.
        data_parallel: one run can be split over several devices (``train.devices``).
        persistent_cache: compiled programs are kept on disk between processes.
    """

    name: str
    always_xla: bool
    data_parallel: bool
    persistent_cache: bool


@dataclass(frozen=True)
class Program:
    """Everything that decides the compiled computation (equal programs compile once).

    Args:
        network: the copies' stacked network.
        spec: binary or C classes, per step or per sequence.
        optimizer: the update rule (its learning rate is per copy and not part of the program).
        batch_shape: ``(batch, T, F)`` of every training step.
        copy_streams: for each copy, the data stream (index into a call's streams) it trains
            on; copies of variants trained on the same seed share a stream.
        steps_per_call: optimizer steps per compiled call.
        standardization: per-feature (mean, variance) applied inside the program, or None.
        freezable: copies can stop early while others go on (early stopping with several
            copies): updates are then masked per copy.
    """

    network: Network
    spec: ModelSpec
    optimizer: OptimizerSettings
    batch_shape: tuple[int, int, int]
    copy_streams: tuple[int, ...]
    steps_per_call: int
    standardization: tuple[np.ndarray, np.ndarray] | None = None
    freezable: bool = False

    @property
    def streams(self) -> int:
        return max(self.copy_streams) + 1

    @property
    def copies(self) -> int:
        return self.network.copies


class Engine:
    """Trains a program's copies; see the module docstring for the division of labour.

    Args:
        program: the computation.
        seeds: one per copy: initial weights and dropout streams.
        learning_rates: one base learning rate per copy.
        jit_compile: XLA-compile (a backend may ignore it, see :attr:`offer`).
        evaluation_jit_compile: XLA-compile the evaluation call; None: as ``jit_compile``.
        device: the device the state lives on (see :func:`bilstm_cli.device.select_device`).
    """

    offer: BackendOffer

    def __init__(
        self,
        program: Program,
        seeds: Sequence[int],
        learning_rates: Sequence[float],
        jit_compile: bool = True,
        device=None,
        evaluation_jit_compile: bool | None = None,
    ):
        if program.steps_per_call < 1:
            raise ValueError(f"steps_per_call must be >= 1. Received: steps_per_call={program.steps_per_call}")
        if not len(seeds) == len(learning_rates) == len(program.copy_streams) == program.copies:
            raise ValueError(
                f"one seed, stream and learning rate per copy ({program.copies}). Received: "
                f"{len(seeds)} seeds, {len(program.copy_streams)} streams, {len(learning_rates)} learning rates"
            )
        self.program = program
        self.device = device
        self.jit_compile = jit_compile
        chosen = jit_compile if evaluation_jit_compile is None else evaluation_jit_compile
        self.evaluation_jit_compile = self.offer.always_xla or chosen
        self.steps_per_call = program.steps_per_call
        self._owners = program.network.parameter_owners()
        self.learning_rates = np.asarray(learning_rates, np.float32)
        self.active = np.ones(program.copies, bool)
        self._state = None
        self.reset(seeds)
        self._chunk_call = self._compile_chunk()
        self._evaluate_calls = {1: self._compile_evaluation(1)}  # by ensemble members

    # ------------------------------------------------------------------------ backend's part

    def _compile_chunk(self):
        """A compiled ``(state, data, count, hyper) -> (state, metrics)`` running ``count``
        steps of :meth:`_training_step` (metrics ``(steps_per_call, C, 3)``)."""
        raise NotImplementedError

    def _compile_evaluation(self, members: int = 1):
        """A compiled ``(params, data) -> (C / members, 3)`` summing :meth:`_evaluation_terms`
        over the batches ``data`` (shared, or one per fold; per ensemble when ``members`` > 1)."""
        raise NotImplementedError

    def _to_backend(self, tree):
        """NumPy arrays (nested lists/tuples) as the backend's arrays on the engine's device."""
        raise NotImplementedError

    def _to_numpy(self, tree):
        raise NotImplementedError

    def _uniform(self, seeds, counters, shape):
        """``(C, *shape)`` uniform [0, 1) numbers: copy c's from the stream (seeds[c], counters[c])."""
        raise NotImplementedError

    # ------------------------------------------------------------------------ the pure step

    def _gradients(self, objective, params):
        """``((loss, terms), gradients)`` of ``objective(params) -> (loss, terms)``."""
        raise NotImplementedError

    def _training_step(self, state, batch, hyper):
        """One optimizer step of every copy: ``(state, batch) -> (state, terms (C, 3))``."""
        params, slots, iterations = state
        step_hyper = {**hyper, "iterations": iterations}
        (_, terms), grads = self._gradients(lambda p: self._objective(p, *batch, step_hyper), params)
        return self._apply(state, grads, hyper), terms

    def _objective(self, params, x, lengths, y, mask, weight, hyper):
        """Sum over copies of each copy's mean loss (its gradient is each copy's own), and
        every copy's (loss, positions, correct)."""
        network, program = self.program.network, self.program
        x, lengths, y, mask, weight = (_per_copy(a, program.copy_streams) for a in (x, lengths, y, mask, weight))
        masks = None
        if network.trunk.dropout > 0:
            masks = self._dropout_masks(hyper["seeds"], hyper["iterations"], x.shape[1], x.shape[2])
        predictions = network.forward(params, x, lengths, program.standardization, masks)
        terms = self._terms(predictions, y, mask, weight)
        loss = ops.sum(terms[:, 0] / ops.maximum(terms[:, 1], 1.0))
        return loss, terms

    def _terms(self, predictions, y, mask, weight):
        """(C, 3): loss sum, positions, correct of each copy."""
        return copy_terms(self.program.spec, y, predictions, mask, weight)

    def _apply(self, state, grads, hyper):
        params, slots, iterations = state
        return apply_updates(
            self.program.optimizer,
            params,
            grads,
            slots,
            iterations,
            hyper["learning_rates"],
            self._owners,
            hyper["active"] if self.program.freezable else None,
        )

    def _dropout_masks(self, seeds, iterations, batch: int, steps: int):
        """Each layer's keep-mask (Keras' ``Dropout``: kept values scaled by 1/(1-rate)), drawn
        per copy from the stream of its seed, step count and layer."""
        rate = self.program.network.trunk.dropout
        masks = []
        for layer, shape in enumerate(self.program.network.dropout_shapes(batch, steps)):
            uniform = self._uniform(seeds, iterations * 64 + layer, shape)  # (C, *shape)
            if len(shape) == 3:
                uniform = ops.transpose(uniform, (1, 0, 2, 3))  # time-major, as the outputs
            masks.append(ops.cast(uniform >= rate, "float32") / (1 - rate))
        return masks

    def _evaluation_terms(self, params, x, lengths, y, mask, members: int = 1):
        """(C, 3) on one batch (no dropout, no class weights): shared by every copy (``lengths``
        ``(B,)``), or one per fold of a k-fold ensemble (a leading axis of k: ``lengths``
        ``(k, B)``; copy c, member ``c % k`` of its run, on fold ``c % k``). ``members`` > 1:
        every ``members`` consecutive copies are one ensemble, scored on their averaged
        probabilities: ``(C / members, 3)``."""
        copies = self.program.copies
        if len(lengths.shape) == 1:
            x = ops.broadcast_to(x[None], (copies, *x.shape))
            lengths = ops.broadcast_to(lengths[None], (copies, *lengths.shape))
            y = ops.broadcast_to(y[None], (copies, *y.shape))
            mask = ops.broadcast_to(mask[None], (copies, *mask.shape))
        else:  # each run's members on their folds, in order
            folds = tuple(range(lengths.shape[0])) * (copies // lengths.shape[0])
            x, lengths, y, mask = (_per_copy(a, folds) for a in (x, lengths, y, mask))
        network, standardization = self.program.network, self.program.standardization
        # an LSTM's gates as one sigmoid (see cells.LSTM.step): XLA runs that forward pass 1.7x faster
        fused = self.evaluation_jit_compile
        predictions = network.forward(params, x, lengths, standardization, None, fused)
        if members > 1:  # shared batches: each ensemble's members saw the same sequences
            runs = copies // members
            predictions = ops.mean(ops.reshape(predictions, (runs, members, *predictions.shape[1:])), axis=1)
            y, mask = y[:runs], mask[:runs]
        return self._terms(predictions, y, mask, mask)

    # ------------------------------------------------------------------------ state

    def reset(self, seeds: Sequence[int]) -> None:
        """Start every copy again from the initial weights of ``seeds``, fresh optimizer state."""
        if len(seeds) != self.program.copies:
            raise ValueError(f"one seed per copy ({self.program.copies}). Received: {len(seeds)}")
        self.seeds = np.asarray(seeds, np.int64)
        params = initial_parameters(self.program.network, [int(s) for s in seeds])
        slots = initial_slots(self.program.optimizer, [p.shape for p in params])
        iterations = np.zeros(self.program.copies, np.int32)
        self.active = np.ones(self.program.copies, bool)
        self._state = self._to_backend((params, slots, iterations))

    def restart(self, seeds: Sequence[int], learning_rates: Sequence[float]) -> None:
        """Train other runs with the compiled program: their seeds and learning rates."""
        self.learning_rates = np.asarray(learning_rates, np.float32)
        self.reset(seeds)

    def set_learning_rate(self, copy: int, rate: float) -> None:
        """Change one copy's base learning rate from the next call on (reduce-on-plateau); the
        rate is an input of the compiled program, so nothing recompiles."""
        self.learning_rates = self.learning_rates.copy()
        self.learning_rates[copy] = rate

    def learning_rates_at(self, steps) -> np.ndarray:
        """``(len(steps), C)``: the learning rate each copy's optimizer step ``steps[i]``
        (0-based) uses with the current base rates and the program's schedule."""
        return learning_rates_at_steps(self.program.optimizer, self.learning_rates, steps)

    def state(self) -> list[np.ndarray]:
        """Every array of the state (weights, optimizer slots, step counts), for checkpoints."""
        params, slots, iterations = self._to_numpy(self._state)
        return [*params, *(array for slot in slots for array in slot), iterations]

    def load_state(self, values: Sequence[np.ndarray]) -> None:
        params, slots, iterations = self._to_numpy(self._state)
        expected = [*params, *(array for slot in slots for array in slot), iterations]
        if len(values) != len(expected) or any(np.shape(v) != e.shape for v, e in zip(values, expected)):
            raise TrainingError(
                f"the checkpoint holds {len(values)} arrays that do not fit this model's {len(expected)} "
                "(was it written by another version of bilstm?)"
            )
        values = [np.asarray(v, e.dtype) for v, e in zip(values, expected)]
        count = len(params)
        per_slot = self.program.optimizer.slots()
        slots = [tuple(values[count + i * per_slot : count + (i + 1) * per_slot]) for i in range(count)]
        self._state = self._to_backend((values[:count], slots, values[-1]))

    def copy_state(self, copy: int) -> list[np.ndarray]:
        """One copy's slices of every state array (early stopping keeps its best ones)."""
        rows = self._rows_of(copy)
        return [array[row] for array, row in zip(self.state(), rows)]

    def set_copy_state(self, copy: int, values: Sequence[np.ndarray]) -> None:
        arrays = [np.array(array) for array in self.state()]  # writable (JAX's arrays read as read-only)
        for array, row, value in zip(arrays, self._rows_of(copy), values):
            array[row] = value
        self.load_state(arrays)

    def _rows_of(self, copy: int) -> list:
        rows = [np.flatnonzero(owner == copy) for owner in self._owners]
        per_slot = self.program.optimizer.slots()
        return [*rows, *(row for row in rows for _ in range(per_slot)), np.array([copy])]

    def copy_parameters(self, copy: int) -> list[np.ndarray]:
        """One copy's weights (its rows of every parameter array), to move into a Keras model."""
        params = self._to_numpy(self._state[0])
        return [param[owner == copy] for param, owner in zip(params, self._owners)]

    @property
    def iterations(self) -> np.ndarray:
        return np.asarray(self._to_numpy(self._state[2]))

    # ------------------------------------------------------------------------ training

    def _hyper(self) -> dict:
        return self._to_backend(
            {
                "learning_rates": self.learning_rates,
                "active": self.active,
                "seeds": (self.seeds % 2**31).astype(np.int32),
            }
        )

    def compile(self, validation: Batches | None = None) -> float:
        """Compile the training call (running it for zero steps) and the evaluation call for
        ``validation``'s shapes; returns the seconds spent."""
        started = time.perf_counter()
        batch, timesteps, features = self.program.batch_shape
        positions = timesteps if self.program.spec.task == PER_STEP else 1
        dummy = [Batches.zeros(self.steps_per_call, batch, timesteps, features, positions)] * self.program.streams
        self._run_chunk(dummy, 0)
        if validation is not None:
            self.evaluate(next(iter(validation.parts())))  # compiles the (one) evaluation shape
        return time.perf_counter() - started

    def train(self, batches: Sequence[Batches]) -> np.ndarray:
        """Train every active copy on its stream's batches (``batches[s]`` for stream s, equal
        steps); returns ``(steps, C, 3)``: loss, positions, correct of every copy and step."""
        if len(batches) != self.program.streams:
            raise ValueError(f"{self.program.streams} data streams expected, got {len(batches)}")
        steps = batches[0].steps
        results = []
        for start in range(0, steps, self.steps_per_call):
            parts = [b.slice(start, start + self.steps_per_call) for b in batches]
            count = parts[0].steps
            results.append(self._run_chunk([p.padded_to(self.steps_per_call) for p in parts], count)[:count])
        if not results:
            return np.zeros((0, self.program.copies, 3), np.float32)
        return np.concatenate(results)

    def _run_chunk(self, parts: Sequence[Batches], count: int) -> np.ndarray:
        data = _stream_arrays(parts)
        self._state, metrics = self._chunk_call(self._state, self._to_backend(data), np.int32(count), self._hyper())
        return np.asarray(self._to_numpy(metrics))

    def evaluate(self, batches: Batches | StreamedBatches, members: int = 1) -> np.ndarray:
        """``(C, 2)``: every copy's mean loss and accuracy (no class weights), see
        :meth:`evaluation_totals`; ``members`` > 1: each ensemble's, ``(C / members, 2)``."""
        return mean_scores(self.evaluation_totals(batches, members))

    def evaluation_totals(self, batches: Batches | StreamedBatches, members: int = 1) -> np.ndarray:
        """``(C, 3)``: every copy's loss sum, positions and correct predictions on ``batches``:
        shared ones, or each copy's own (arrays ``(steps, C, B, ...)``); a streamed set is scored
        a part at a time and its totals summed. ``members`` > 1: per ensemble of that many
        consecutive copies, on shared batches."""
        if members not in self._evaluate_calls:
            self._evaluate_calls[members] = self._compile_evaluation(members)
        call = self._evaluate_calls[members]
        totals = 0.0
        for part in batches.parts():
            data = self._to_backend((part.x, part.lengths, part.y, part.mask))
            totals = totals + np.asarray(self._to_numpy(call(self._state[0], data)), np.float64)
        return totals


def mean_scores(totals: np.ndarray) -> np.ndarray:
    """``(N, 2)`` mean loss and accuracy from ``(N, 3)`` evaluation totals."""
    positions = np.maximum(totals[:, 1], 1.0)
    return np.stack([totals[:, 0] / positions, totals[:, 2] / positions], axis=1)


def copy_terms(spec: ModelSpec, y, predictions, mask, weight):
    """``(C, 3)``: :func:`~bilstm_cli.engine.terms.batch_terms` for each copy at once."""
    if spec.task != PER_STEP:
        predictions = ops.expand_dims(predictions, 2)
    if spec.binary:
        probability = predictions[..., 0]
        losses = ops.binary_crossentropy(ops.cast(y, probability.dtype), probability)
        predicted = ops.cast(probability > 0.5, y.dtype)
    else:
        losses = ops.sparse_categorical_crossentropy(y, predictions)
        predicted = ops.cast(ops.argmax(predictions, axis=-1), y.dtype)
    hits = ops.cast(ops.equal(predicted, y), mask.dtype)
    axes = (1, 2)
    return ops.stack([ops.sum(losses * weight, axes), ops.sum(mask, axes), ops.sum(hits * mask, axes)], axis=1)


def _per_copy(array, copy_streams: tuple[int, ...]):
    """Each copy's slice of a per-stream array (leading axis): the array itself when copy c
    trains on stream c, the streams repeated when each variant takes them all in order, else a
    gather with constant indices."""
    streams = max(copy_streams) + 1
    if copy_streams == tuple(range(streams)):
        return array
    if len(copy_streams) % streams == 0 and copy_streams == tuple(range(streams)) * (len(copy_streams) // streams):
        return ops.concatenate([array] * (len(copy_streams) // streams), axis=0)
    return ops.take(array, np.asarray(copy_streams, np.int32), axis=0)


def _stream_arrays(parts: Sequence[Batches]) -> tuple:
    """Training arrays with a stream axis after the step axis: ``x`` ``(S, N, B, T, F)``..."""
    return tuple(np.stack(arrays, axis=1) for arrays in zip(*(p.arrays() for p in parts)))


__all__ = ["BackendOffer", "Engine", "Program", "batch_terms", "copy_terms", "mean_scores"]
