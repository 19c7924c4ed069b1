"""The JAX engine: the program's steps as one ``jax.lax.scan``, compiled once with ``jax.jit``.

Only what differs from TensorFlow lives here (see :mod:`bilstm_cli.engine.base`): gradients
by ``jax.value_and_grad``, the scan over a chunk's steps (padded steps skipped with
``lax.cond``), the state's buffers donated to the call (updated in place), dropout streams
from ``jax.random`` keys, and :class:`DataParallelEngine` for ``train.devices``: the batch axis
sharded over a device mesh, the state replicated, XLA's partitioner adding the all-reduce.
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..backend import keras
from ..data.generator import DROPOUT_STREAM
from ..device import DeviceInfo, jax_device, jax_devices
from .base import BackendOffer, Engine
from .network import Trunk

jax = backend.jax()
jnp = jax.numpy

OFFER = BackendOffer(name="jax", always_xla=True, data_parallel=True, persistent_cache=True)


def use_xla(setting: bool | str, device_kind: str, batch_size: int, timesteps: int, trunk: Trunk) -> bool:
    """JAX always compiles with XLA (there is no graph mode to fall back to)."""
    return True


def time_loop(timesteps: int, jit_compile: bool):
    """The recurrence's loop: ``jax.lax.scan`` (an unrolled loop compiles slower and, in XLA's
    CPU backend, also runs slower)."""
    return jax.lax.scan


def placed(device: DeviceInfo):
    """A context in which new arrays (a model being built or loaded) live on ``device``."""
    return jax.default_device(jax_device(device))


def predictor(model: keras.Model, device: DeviceInfo):
    """A compiled ``(x, lengths) -> probabilities`` function of a model, on ``device``."""
    call = jax.jit(lambda trainable, other, x, lengths: model.stateless_call(trainable, other, [x, lengths])[0])
    trainable = [v.value for v in model.trainable_variables]
    other = [v.value for v in model.non_trainable_variables]
    return lambda x, lengths: np.asarray(call(trainable, other, x, lengths))


class JaxEngine(Engine):
    """The :class:`~bilstm_cli.engine.base.Engine` on JAX."""

    offer = OFFER

    def _compile_chunk(self):
        steps, copies = self.steps_per_call, self.program.copies

        def chunk(state, data, count, hyper):
            def body(index, carry):  # only the real steps run: a padded chunk's tail is skipped
                state, results = carry
                state, terms = self._training_step(state, tuple(array[index] for array in data), hyper)
                return state, results.at[index].set(terms)

            results = jnp.zeros((steps, copies, 3), jnp.float32)
            return jax.lax.fori_loop(0, count, body, (state, results))

        return jax.jit(chunk, donate_argnums=0)

    def _compile_evaluation(self, members: int = 1):
        scored = self.program.copies // members

        def evaluation(params, data):
            def body(total, batch):
                return total + self._evaluation_terms(params, *batch, members=members), None

            return jax.lax.scan(body, jnp.zeros((scored, 3), jnp.float32), data)[0]

        return jax.jit(evaluation)

    def _gradients(self, objective, params):
        return jax.value_and_grad(objective, has_aux=True)(params)

    def _uniform(self, seeds, counters, shape):
        def one(seed, counter):
            key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), DROPOUT_STREAM), counter)
            return jax.random.uniform(key, shape, jnp.float32)

        return jax.vmap(one)(seeds, counters)

    def _to_backend(self, tree):
        target = jax_device(self.device) if isinstance(self.device, DeviceInfo) else None
        return jax.device_put(jax.tree.map(jnp.asarray, tree), target)

    def _to_numpy(self, tree):
        return jax.tree.map(np.asarray, tree)


class DataParallelEngine(JaxEngine):
    """:class:`JaxEngine` on several devices: every step's batch split over a one-axis mesh
    (XLA's SPMD partitioner sums the gradients and loss terms across devices), the state
    replicated, so every device applies the same update, as one device would."""

    def __init__(self, program, *args, device: DeviceInfo, **kwargs):
        mesh = jax.sharding.Mesh(np.array(jax_devices(device)), ("batch",))
        self._replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        # training arrays are (steps, streams, batch, ...): split the batch
        self._batch_sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, None, "batch"))
        super().__init__(program, *args, device=device, **kwargs)

    def _to_backend(self, tree):
        return jax.device_put(jax.tree.map(jnp.asarray, tree), self._replicated)

    def _run_chunk(self, parts, count):
        from .base import _stream_arrays

        data = jax.device_put(_stream_arrays(parts), self._batch_sharded)
        self._state, metrics = self._chunk_call(self._state, data, np.int32(count), self._hyper())
        return np.asarray(metrics)


def engine_class(devices: int) -> type[Engine]:
    """The engine for one device or several (``train.devices``)."""
    return DataParallelEngine if devices > 1 else JaxEngine
