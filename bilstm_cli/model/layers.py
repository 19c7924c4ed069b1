"""Small registered Keras layers, so saved models (model.keras) load without custom code.

Importing this module registers them; :mod:`bilstm_cli.model.build` imports it.
"""

from __future__ import annotations

from ..backend import keras, ops


@keras.saving.register_keras_serializable(package="bilstm")
class ReverseTime(keras.layers.Layer):
    """Flip a sequence along its time axis, keeping the mask.

    ``LSTM(go_backwards=True, return_sequences=True)`` emits its outputs in reversed time
    order; ``Bidirectional`` flips them back before merging, and a backward-only per-step
    model must do the same, or output ``t`` is scored against label ``T-1-t``. With right
    padding the flip is exact: the backward layer skips the (masked) padding first, so its
    outputs land on the real steps once flipped.

    Example:
        >>> x = keras.Input((10, 1))
        >>> h = keras.layers.LSTM(4, go_backwards=True, return_sequences=True)(x)
        >>> aligned = ReverseTime()(h)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return ops.flip(inputs, axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="bilstm")
class LengthMask(keras.layers.Layer):
    """Pass sequences through and attach a mask from their true lengths.

    Takes ``[x, lengths]`` with ``x`` of shape ``(batch, steps, features)`` and ``lengths``
    ``(batch,)``. Steps at or after ``lengths[i]`` are masked, so padding changes neither the
    recurrent states (in either direction), the outputs on real steps, nor pooling. Unlike
    ``Masking(mask_value=0.0)`` a real step whose features are all zero stays unmasked.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return inputs[0]

    def compute_mask(self, inputs, previous_mask=None):
        x, lengths = inputs
        # 1, 2, ..., T built from x itself, so the time dimension may be unknown
        positions = ops.cumsum(ops.ones_like(x[..., 0]), axis=1)
        return positions <= ops.expand_dims(ops.cast(lengths, x.dtype), 1)

    def compute_output_shape(self, input_shape):
        return input_shape[0]
