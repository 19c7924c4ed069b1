"""Initial weights of a run, drawn with NumPy from the run's seed.

Keras' default initializers (glorot-uniform input kernels, orthogonal recurrent kernels, zero
biases with the LSTM's forget-gate bias at 1, glorot-uniform head), drawn from the stream
``(seed, INITIAL_WEIGHTS_STREAM)``. A run's initial weights depend on its seed alone, not on the
backend nor on which other runs share its program, so a repeat trained among forty others
starts exactly where ``bilstm train --seed S`` starts.
"""

from __future__ import annotations

import numpy as np

from ..data.generator import INITIAL_WEIGHTS_STREAM, stream_rng
from .network import Network


def glorot_uniform(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Keras' ``GlorotUniform`` for a 2-D kernel: U(-l, l), l = sqrt(6 / (fan_in + fan_out))."""
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, shape)


def orthogonal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Keras' ``Orthogonal`` (gain 1): Q of a normal matrix's QR, signs fixed by R's diagonal."""
    rows, columns = shape
    flat = rng.standard_normal((max(rows, columns), min(rows, columns)))
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    return q.T if rows < columns else q


def recurrent_bias(cell: str, units: int) -> np.ndarray:
    """Zero biases; an LSTM's forget gate starts at 1 (Keras' ``unit_forget_bias``)."""
    if cell == "lstm":
        return np.concatenate([np.zeros(units), np.ones(units), np.zeros(2 * units)])
    if cell == "gru":
        return np.zeros((2, 3 * units))
    return np.zeros(units)


def initial_parameters(network: Network, seeds: list[int]) -> list[np.ndarray]:
    """The parameter arrays (float32, :meth:`Network.parameter_shapes` order) of copies
    initialised from ``seeds`` (one per copy). Padding rows of narrower inputs stay zero."""
    if len(seeds) != network.copies:
        raise ValueError(f"one seed per copy: {network.copies} copies, {len(seeds)} seeds")
    arrays = [np.zeros(shape, np.float32) for _, shape in network.parameter_shapes()]
    trunk = network.trunk
    gates = network.cell.gates * trunk.units
    for copy, seed in enumerate(seeds):
        rng = stream_rng(seed, INITIAL_WEIGHTS_STREAM)
        segment = network.segments[network.segment_of(copy)]
        width = segment.width(trunk.units)
        rows = network.copy_rows(copy)
        for layer in range(trunk.layers):
            inputs = trunk.features if layer == 0 else width
            kernel, recurrent, bias = (rows[3 * layer + k] for k in range(3))
            for unit in range(len(segment.directions)):  # Keras' order: forward layer first
                arrays[3 * layer][kernel[unit], :inputs] = glorot_uniform(rng, (inputs, gates))
                arrays[3 * layer + 1][recurrent[unit]] = orthogonal(rng, (trunk.units, gates))
                arrays[3 * layer + 2][bias[unit]] = recurrent_bias(trunk.cell, trunk.units)
        arrays[-2][rows[-2][0], :width] = glorot_uniform(rng, (width, trunk.outputs))
    return arrays
