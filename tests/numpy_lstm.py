"""A reference LSTM in NumPy, to check Keras layers against hand computation."""

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
