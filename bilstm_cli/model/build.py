"""Build the Keras models: (stacked) recurrent layers (LSTM, GRU or SimpleRNN), forward,
backward or Bidirectional.

Every model takes two inputs, ``x`` ``(batch, steps, features)`` and ``lengths`` ``(batch,)``,
so variable-length data is masked the same way in training, evaluation and prediction.
"""

from __future__ import annotations

import numpy as np

from ..backend import keras
from ..config.schema import ModelSettings
from ..config.variants import model_variant_name
from ..data.dataset import PER_STEP
from ..data.spec import ModelSpec
from .layers import LengthMask, ReverseTime

__all__ = ["ModelSpec", "build_model", "load_model"]


def build_model(
    settings: ModelSettings,
    spec: ModelSpec,
    standardization: tuple[np.ndarray, np.ndarray] | None = None,
    masked: bool = True,
    members: int = 1,
) -> keras.Model:
    """Build an uncompiled model for the given settings.

    Args:
        settings: kind, cell, direction or merge mode, units, layers, dropout, pooling.
        spec: number of features, number of classes, per-step or per-sequence labels.
        standardization: optional per-feature (mean, variance) fitted on training data; it
            becomes a Normalization layer, so it is saved with the model and applied by
            evaluate and predict without further bookkeeping.
        masked: mask steps beyond each sequence's length. Without it ``lengths`` is ignored,
            which is exact (and compiles faster) when every sequence has full length.
        members: a k-fold ensemble's models (``train.folds``): that many towers side by side
            (layers ``fold0_bilstm_0``, ``fold0_head``...) whose probabilities an ``Average``
            layer named ``ensemble`` averages.

    Example:
        >>> model = build_model(ModelSettings(kind="bilstm", merge="sum"), ModelSpec(1, 2))
        >>> model.output_shape
        (None, None, 1)
    """
    x_input = keras.Input((None, spec.features), name="x")
    lengths_input = keras.Input((), dtype="int32", name="lengths")
    hidden = x_input
    if standardization is not None:
        mean, variance = standardization
        hidden = keras.layers.Normalization(mean=mean, variance=variance, name="standardize")(hidden)
    if masked:
        hidden = LengthMask(name="length_mask")([hidden, lengths_input])
    towers = [_tower(settings, spec, hidden, member_prefix(member, members)) for member in range(members)]
    output = towers[0] if members == 1 else keras.layers.Average(name="ensemble")(towers)
    return keras.Model([x_input, lengths_input], output, name=model_variant_name(settings))


def _tower(settings: ModelSettings, spec: ModelSpec, hidden, prefix: str):
    """The recurrent layers and the head on ``hidden``; layer names start with ``prefix``."""
    for index in range(settings.layers):
        last = index == settings.layers - 1
        # the sequence task with 'last' pooling reads the final states of the last layer
        sequences = not last or spec.task == PER_STEP or settings.pooling == "mean"
        hidden = _recurrent_layer(settings, sequences, index, prefix)(hidden)
        if settings.kind == "lstm" and settings.direction == "backward" and sequences:
            hidden = ReverseTime(name=f"{prefix}align_{index}")(hidden)
        if settings.dropout > 0:
            hidden = keras.layers.Dropout(settings.dropout, name=f"{prefix}dropout_{index}")(hidden)

    if spec.task != PER_STEP and settings.pooling == "mean":
        hidden = keras.layers.GlobalAveragePooling1D(name=f"{prefix}mean_pool")(hidden)  # masked mean
    if spec.binary:
        return keras.layers.Dense(1, activation="sigmoid", name=f"{prefix}head")(hidden)
    return keras.layers.Dense(spec.num_classes, activation="softmax", name=f"{prefix}head")(hidden)


def member_prefix(member: int, members: int) -> str:
    """The layer-name prefix of a k-fold ensemble's member (none for a single model)."""
    return f"fold{member}_" if members > 1 else ""


CELL_LAYERS = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}


def recurrent_layer_name(kind: str, cell: str, index: int) -> str:
    """The saved model's name for recurrent layer ``index``: ``bilstm_0``, ``lstm_0``,
    ``bigru_0``, ``rnn_1``..."""
    return f"{'bi' if kind == 'bilstm' else ''}{cell}_{index}"


def _recurrent_layer(
    settings: ModelSettings, return_sequences: bool, index: int, prefix: str = ""
) -> keras.layers.Layer:
    layer = getattr(keras.layers, CELL_LAYERS[settings.cell])
    name = prefix + recurrent_layer_name(settings.kind, settings.cell, index)
    if settings.kind == "bilstm":
        return keras.layers.Bidirectional(
            layer(settings.units, return_sequences=return_sequences), merge_mode=settings.merge, name=name
        )
    return layer(
        settings.units, return_sequences=return_sequences, go_backwards=settings.direction != "forward", name=name
    )


def load_model(path: str) -> keras.Model:
    """Load a saved model.keras (our layers are registered by importing this module)."""
    return keras.saving.load_model(path, compile=False)
