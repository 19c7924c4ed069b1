"""Reference LSTM, GRU and SimpleRNN cells in NumPy, to check Keras layers against hand computation."""

from __future__ import annotations

import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def lstm_outputs(x: np.ndarray, kernel, recurrent, bias, reverse: bool = False) -> np.ndarray:
    """Hidden state after each step of ``x`` ``(T, F)``; ``reverse`` reads from the end.

    Returns outputs in the order the steps were read (like Keras' go_backwards), i.e.
    ``out[k]`` is the state after reading ``k + 1`` steps. Keras gate order: i, f, c, o.
    """
    units = recurrent.shape[0]
    h = np.zeros(units)
    c = np.zeros(units)
    steps = x[::-1] if reverse else x
    outputs = []
    for step in steps:
        z = step @ kernel + h @ recurrent + bias
        i, f, g, o = (z[k * units : (k + 1) * units] for k in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.array(outputs)


def gru_outputs(x: np.ndarray, kernel, recurrent, bias, reverse: bool = False) -> np.ndarray:
    """Keras' GRU with ``reset_after=True`` (its default), read like :func:`lstm_outputs`.

    ``bias`` is ``(2, 3U)``: input bias, recurrent bias. Gate order: z (update), r (reset), h.
    """
    units = recurrent.shape[0]
    h = np.zeros(units)
    outputs = []
    for step in x[::-1] if reverse else x:
        xz, xr, xh = np.split(step @ kernel + bias[0], 3)
        rz, rr, rh = np.split(h @ recurrent + bias[1], 3)
        z, r = sigmoid(xz + rz), sigmoid(xr + rr)
        h = z * h + (1 - z) * np.tanh(xh + r * rh)
        outputs.append(h)
    return np.array(outputs)


def rnn_outputs(x: np.ndarray, kernel, recurrent, bias, reverse: bool = False) -> np.ndarray:
    """Keras' SimpleRNN (tanh), read like :func:`lstm_outputs`."""
    h = np.zeros(recurrent.shape[0])
    outputs = []
    for step in x[::-1] if reverse else x:
        h = np.tanh(step @ kernel + bias + h @ recurrent)
        outputs.append(h)
    return np.array(outputs)
