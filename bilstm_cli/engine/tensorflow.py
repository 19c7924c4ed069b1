"""The TensorFlow engine: the program's steps as one ``tf.while_loop`` in a ``tf.function``.

Only what differs from JAX lives here (see :mod:`bilstm_cli.engine.base`): gradients by
``tf.GradientTape``, the loop over a chunk's real steps, XLA where it pays (small steps on CPU,
see :func:`use_xla`), dropout streams from stateless random ops, and
:class:`DataParallelEngine` for ``train.devices``: each step's batch split over the devices,
each device's gradients computed where its share lives and summed before the one update.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..backend import keras
from ..data.generator import DROPOUT_STREAM
from ..device import DeviceInfo
from .base import BackendOffer, Engine
from .network import Trunk, unrolled_scan

tf = backend.tensorflow()

OFFER = BackendOffer(name="tensorflow", always_xla=False, data_parallel=True, persistent_cache=True)


def use_xla(
    setting: bool | str,
    device_kind: str,
    batch_size: int,
    timesteps: int,
    trunk: Trunk,
    copies: int = 1,
    total_steps: int = 0,
) -> bool:
    """Whether to XLA-compile the training loop: the setting if explicit; ``auto``: for a time
    loop longer than :data:`MAX_UNROLLED_STEPS` (a ``while`` loop) whose layers return only
    their final states, and for an unrolled loop of a single run (one copy) of at least
    :data:`XLA_MIN_STEPS` training steps in all (``total_steps``).

    Measured on a 2-core CPU (``benchmarks/step.py engine``, ms per step, plain graph vs XLA):
    per-sequence labels, batch 64, T=100, 8 features, 64 units: 21.7 vs 11.9; T=1000, 20 units:
    142 vs 63; 20 copies at T=100: 46 vs 37. Where a while loop collects every step's outputs
    (per-step labels, inner layers) XLA's gain fades and turns into a loss (T=100: 33 vs 27,
    T=300: 49 vs 46, T=1000: 204 vs 880). Unrolled loops (T <= 32) of stacked copies run 2x
    slower under XLA (the card's program: 6.5 vs 13.2) and compile 2-4 s longer, which a single
    batch-1 run does not earn back (1.16 vs 0.11 ms per step, but 1000 steps). One copy alone
    (batch 32, T=10, unrolled) runs 2-4x faster under XLA: 2.97 vs 0.79 ms with 64 units, 1.44 vs
    0.80 with 20 (4 copies of 20 units: 2.19 vs 2.62): the ~3 s compile is earned back within
    ~1500 steps at 64 units, ~4500 at 20 (a 1M-sequence file's epoch: 53 s -> 19 s).
    """
    if setting != "auto":
        return bool(setting)
    if timesteps > MAX_UNROLLED_STEPS and not trunk.collects_sequences:
        return True
    return timesteps <= MAX_UNROLLED_STEPS and copies == 1 and total_steps >= XLA_MIN_STEPS


XLA_MIN_STEPS = 2000  # a single run this long earns back XLA's compile (see use_xla)


def use_xla_in_evaluation(
    setting: bool | str, training_xla: bool, device_kind: str, timesteps: int, copies: int
) -> bool:
    """Whether to XLA-compile the evaluation call: as training where that is XLA or the setting
    is explicit; ``auto``: also for stacked copies (compare's programs) of an unrolled loop on a
    CPU, whose forward pass alone XLA runs faster than the graph, with an LSTM's gates as one sigmoid.
    Measured (``python benchmarks/profile_card.py --backend tensorflow --epochs 600``, 20 copies
    of the card's BiLSTM-20, 20 validations of 1000 sequences): 1.32-1.52 s as a graph, 0.81-0.88 s
    with XLA, for ~0.1 s more compile with the program in the persistent cache (~0.8 s without)."""
    if training_xla or setting != "auto":
        return training_xla or bool(setting)
    return device_kind == "cpu" and copies >= 2 and timesteps <= MAX_UNROLLED_STEPS


# Time loops up to this length are unrolled: a TensorFlow graph then runs each step's few ops
# directly, and XLA gets straight-line code; longer ones are a while loop.
MAX_UNROLLED_STEPS = 32


def time_loop(timesteps: int, jit_compile: bool):
    """The recurrence's loop over ``timesteps`` (see :class:`~bilstm_cli.engine.network.Network`)."""
    return unrolled_scan if timesteps <= MAX_UNROLLED_STEPS else while_scan


def while_scan(step, carry, xs):
    """``keras.ops.scan``'s contract as a ``tf.while_loop`` with a fixed trip count and
    fixed-size TensorArrays, which XLA can compile inside the training loop's gradient. A step
    whose ``collects_outputs`` attribute is False outputs None: nothing is collected."""
    steps = xs[0].shape[0]
    collects = getattr(step, "collects_outputs", True)
    flat_carry = tf.nest.flatten(carry) if collects else []
    arrays = [tf.TensorArray(value.dtype, size=steps, element_shape=value.shape) for value in flat_carry]

    def body(t, carry, arrays):
        carry, output = step(carry, tuple(x[t] for x in xs))
        if collects:
            arrays = [array.write(t, value) for array, value in zip(arrays, tf.nest.flatten(output))]
        return t + 1, carry, arrays

    _, carry, arrays = tf.while_loop(
        lambda t, *_: t < steps, body, (tf.constant(0), carry, arrays), maximum_iterations=steps
    )
    if not collects:
        return carry, None
    return carry, tf.nest.pack_sequence_as(carry, [array.stack() for array in arrays])


def placed(device: DeviceInfo):
    """A context in which new variables (a model being built or loaded) live on ``device``."""
    return tf.device(device.name)


def predictor(model: keras.Model, device: DeviceInfo):
    """A compiled ``(x, lengths) -> probabilities`` function of a model, on ``device``."""
    call = tf.function(lambda x, lengths: model([x, lengths], training=False))

    def predict(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        with tf.device(device.name):
            return call(x, lengths).numpy()

    return predict


class TensorFlowEngine(Engine):
    """The :class:`~bilstm_cli.engine.base.Engine` on TensorFlow."""

    offer = OFFER

    def _device_name(self) -> str:
        return self.device.name if isinstance(self.device, DeviceInfo) else "/CPU:0"

    def _compile_chunk(self):
        steps, copies = self.steps_per_call, self.program.copies

        def chunk(state, data, count, hyper):
            results = tf.zeros((steps, copies, 3), tf.float32)

            def body(index, state, results):
                batch = tuple(array[index] for array in data)
                state, terms = self._training_step(state, batch, hyper)
                return index + 1, state, tf.tensor_scatter_nd_update(results, [[index]], terms[None])

            _, state, results = tf.while_loop(lambda index, *_: index < count, body, (tf.constant(0), state, results))
            return state, results

        compiled = tf.function(chunk, jit_compile=self.jit_compile, autograph=False)

        def call(state, data, count, hyper):
            with tf.device(self._device_name()):
                return compiled(state, data, tf.constant(count), hyper)

        return call

    def _compile_evaluation(self, members: int = 1):
        scored = self.program.copies // members

        def evaluation(params, data):
            steps = tf.shape(data[0])[0]

            def body(index, total):
                batch = (array[index] for array in data)
                return index + 1, total + self._evaluation_terms(params, *batch, members=members)

            return tf.while_loop(lambda index, _: index < steps, body, (0, tf.zeros((scored, 3), tf.float32)))[1]

        compiled = tf.function(evaluation, jit_compile=self.evaluation_jit_compile, autograph=False)

        def call(params, data):
            with tf.device(self._device_name()):
                return compiled(params, data)

        return call

    def _gradients(self, objective, params):
        with tf.GradientTape() as tape:
            tape.watch(params)
            loss, terms = objective(params)
        return (loss, terms), tape.gradient(loss, params)

    def _uniform(self, seeds, counters, shape):
        rows = []
        for copy in range(seeds.shape[0]):
            seed = tf.stack([tf.cast(seeds[copy], tf.int64), tf.cast(counters[copy], tf.int64) * 8 + DROPOUT_STREAM])
            rows.append(tf.random.stateless_uniform(shape, seed, dtype=tf.float32))
        return tf.stack(rows)

    def _to_backend(self, tree):
        with tf.device(self._device_name()):
            return tf.nest.map_structure(tf.convert_to_tensor, tree)

    def _to_numpy(self, tree):
        return tf.nest.map_structure(lambda value: value.numpy() if hasattr(value, "numpy") else value, tree)


class DataParallelEngine(TensorFlowEngine):
    """:class:`TensorFlowEngine` on several devices (``train.devices``).

    Every step splits its batch evenly over the devices (consecutive shares, in device
    order). Each device computes, where its share lives, the gradient of its share's loss
    sum divided by the whole batch's labelled positions (known from the mask before any
    weight is touched); their sum is the gradient of the single-device loss, applied once.
    XLA compiles each device's forward and backward pass; the loop runs as a graph.
    """

    def __init__(self, program, *args, device: DeviceInfo, **kwargs):
        self._names = list(device.names)
        super().__init__(program, *args, device=device, **kwargs)

    def _device_name(self) -> str:
        return self._names[0]

    def _compile_chunk(self):
        shares = len(self._names)
        gradient_of_share = tf.function(self._share_gradients, jit_compile=self.jit_compile, autograph=False)
        steps, copies = self.steps_per_call, self.program.copies

        def step(state, batch, hyper):
            params = state[0]
            x, lengths, y, mask, weight = batch
            positions = tf.reduce_sum(tf.gather(mask, list(self.program.copy_streams)), axis=(1, 2))  # per copy
            size = x.shape[1] // shares
            totals, gradients = None, None
            for index, name in enumerate(self._names):
                share = tuple(array[:, index * size : (index + 1) * size] for array in batch)
                with tf.device(name):
                    grads, terms = gradient_of_share(params, share, positions, hyper, state[2])
                gradients = grads if gradients is None else [a + b for a, b in zip(gradients, grads)]
                totals = terms if totals is None else totals + terms
            return self._apply(state, gradients, hyper), totals

        def chunk(state, data, count, hyper):
            results = tf.zeros((steps, copies, 3), tf.float32)

            def body(index, state, results):
                state, terms = step(state, tuple(array[index] for array in data), hyper)
                return index + 1, state, tf.tensor_scatter_nd_update(results, [[index]], terms[None])

            _, state, results = tf.while_loop(lambda index, *_: index < count, body, (tf.constant(0), state, results))
            return state, results

        compiled = tf.function(chunk, autograph=False)

        def call(state, data, count, hyper):
            with tf.device(self._names[0]):
                return compiled(state, data, tf.constant(count), hyper)

        return call

    def _share_gradients(self, params, share, positions, hyper, iterations):
        step_hyper = {**hyper, "iterations": iterations}

        def objective(params):
            _, terms = self._objective(params, *share, step_hyper)
            return tf.reduce_sum(terms[:, 0] / tf.maximum(positions, 1.0)), terms

        (_, terms), grads = self._gradients(objective, params)
        return grads, terms


def engine_class(devices: int) -> type[Engine]:
    """The engine for one device or several (``train.devices``)."""
    return DataParallelEngine if devices > 1 else TensorFlowEngine
