"""A copy's weights moved into the plain Keras model a run saves.

The model is :func:`bilstm_cli.model.build.build_model`'s: recurrent layers (inside
``Bidirectional`` for a BiLSTM) and a ``Dense`` head, whose variables are set from the copy's
rows of the program's stacked arrays (without the zero padding of narrower inputs).
"""

from __future__ import annotations

import numpy as np

from ..model.build import recurrent_layer_name
from .network import Network


def copy_weights(network: Network, copy: int, rows: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """One copy's weights by Keras layer: ``{"bilstm_0": [k_f, rk_f, b_f, k_b, rk_b, b_b], "head": [k, b]}``.

    Args:
        network: the program's network.
        copy: the copy's index.
        rows: the copy's rows of every parameter array (:meth:`Engine.copy_parameters`),
            forward unit first.
    """
    segment = network.segments[network.segment_of(copy)]
    width = segment.width(network.trunk.units)
    weights: dict[str, list[np.ndarray]] = {}
    for layer in range(network.trunk.layers):
        kernel, recurrent, bias = rows[3 * layer : 3 * layer + 3]
        inputs = network.trunk.features if layer == 0 else width
        name = recurrent_layer_name(segment.kind, network.trunk.cell, layer)
        weights[name] = [
            array
            for unit in range(len(segment.directions))
            for array in (kernel[unit, :inputs], recurrent[unit], bias[unit])
        ]
    weights["head"] = [rows[-2][0, :width], rows[-1][0]]
    return weights


def load_into(model, weights: dict[str, list[np.ndarray]]) -> None:
    """Set a built model's recurrent and head layers from :func:`copy_weights`."""
    for name, arrays in weights.items():
        model.get_layer(name).set_weights(arrays)
