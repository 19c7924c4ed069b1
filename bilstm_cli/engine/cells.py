"""Recurrent cells for stacked directional units, computed as Keras' cells compute them.

Each cell works on ``D`` units at once: inputs ``(D, B, ...)``, kernels with a leading ``D``
axis. The order of operations follows Keras 3 (``LSTMCell``, ``GRUCell`` with
``reset_after=True``, ``SimpleRNNCell``; their default ``implementation=2`` fused path), so a
model built with those layers computes the same numbers from the same weights.
"""

from __future__ import annotations

from ..backend import ops


class LSTM:
    """``z = x W + h U + b``; gates i, f, c, o; ``c' = f c + i tanh(g)``, ``h' = o tanh(c')``."""

    gates = 4

    @staticmethod
    def bias_shape(units: int) -> tuple[int, ...]:
        return (4 * units,)

    @staticmethod
    def project(x, kernel):
        """One step's input ``(D, B, W)`` times the input kernels ``(D, W, G)``."""
        return ops.matmul(x, kernel)  # a batched product: TensorFlow runs it as one BatchMatMul

    @staticmethod
    def initial_state(units_total: int, batch: int, units: int, dtype):
        zeros = ops.zeros((units_total, batch, units), dtype)
        return (zeros, zeros)

    @staticmethod
    def step(xp_t, state, recurrent, bias, fused_gates: bool = False):
        """``fused_gates``: one sigmoid over all four gates, then slices. The same function (the
        sigmoid is elementwise; values may differ in the last bit where a vectorised sigmoid
        does); XLA's CPU backend runs a forward pass ~1.7x faster that way, but its gradient
        ~7% slower, so only evaluation uses it, where it is XLA-compiled."""
        h, c = state
        z = xp_t + ops.matmul(h, recurrent)
        z = z + bias[:, None, :]
        if fused_gates:
            i, f, _, o = ops.split(ops.sigmoid(z), 4, axis=-1)
            c = f * c + i * ops.tanh(ops.split(z, 4, axis=-1)[2])
            return (o * ops.tanh(c), c)
        z0, z1, z2, z3 = ops.split(z, 4, axis=-1)
        i, f, o = ops.sigmoid(z0), ops.sigmoid(z1), ops.sigmoid(z3)
        c = f * c + i * ops.tanh(z2)
        return (o * ops.tanh(c), c)


class GRU:
    """Keras' GRU with ``reset_after=True``: ``x W + b_in`` and ``h U + b_rec``; gates z, r;
    ``hh = tanh(x_h + r (h U_h + b_h))``, ``h' = z h + (1 - z) hh``."""

    gates = 3

    @staticmethod
    def bias_shape(units: int) -> tuple[int, ...]:
        return (2, 3 * units)

    project = LSTM.project

    @staticmethod
    def initial_state(units_total: int, batch: int, units: int, dtype):
        return (ops.zeros((units_total, batch, units), dtype),)

    @staticmethod
    def step(xp_t, state, recurrent, bias, fused_gates: bool = False):
        (h,) = state
        matrix_x = xp_t + bias[:, None, 0, :]
        x_z, x_r, x_h = ops.split(matrix_x, 3, axis=-1)
        inner = ops.matmul(h, recurrent) + bias[:, None, 1, :]
        r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
        z = ops.sigmoid(x_z + r_z)
        r = ops.sigmoid(x_r + r_r)
        hh = ops.tanh(x_h + r * r_h)
        return (z * h + (1 - z) * hh,)


class SimpleRNN:
    """``h' = tanh((x W + b) + h U)``."""

    gates = 1

    @staticmethod
    def bias_shape(units: int) -> tuple[int, ...]:
        return (units,)

    project = LSTM.project

    @staticmethod
    def initial_state(units_total: int, batch: int, units: int, dtype):
        return (ops.zeros((units_total, batch, units), dtype),)

    @staticmethod
    def step(xp_t, state, recurrent, bias, fused_gates: bool = False):
        (h,) = state
        return (ops.tanh((xp_t + bias[:, None, :]) + ops.matmul(h, recurrent)),)


CELLS = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}


def for_name(name: str):
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}. Expected one of {sorted(CELLS)}")
    return CELLS[name]
