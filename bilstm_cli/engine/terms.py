"""What every backend's engine computes the same way: the loss and accuracy terms of a batch,
and how many steps go into one compiled call (the optimizer is engine/optimizers.py)."""

from __future__ import annotations

from ..backend import ops
from ..data.dataset import PER_STEP
from ..data.spec import ModelSpec
from ..limits import MAX_CALL_BYTES

MAX_STEPS_PER_CALL = 1000


def batch_terms(spec: ModelSpec, y, predictions, mask, weight):
    """Weighted loss sum, number of labelled positions and correct positions of one batch.

    ``y``/``mask``/``weight`` are ``(batch, P)``; predictions ``(batch, P, 1|C)`` per step or
    ``(batch, 1|C)`` per sequence. Loss and accuracy follow Keras' binary / sparse
    categorical cross-entropy and accuracy (threshold 0.5), restricted to real positions.
    """
    if spec.task != PER_STEP:
        predictions = ops.expand_dims(predictions, 1)
    if spec.binary:
        probability = predictions[..., 0]
        losses = ops.binary_crossentropy(ops.cast(y, probability.dtype), probability)
        predicted = ops.cast(probability > 0.5, y.dtype)
    else:
        losses = ops.sparse_categorical_crossentropy(y, predictions)
        predicted = ops.cast(ops.argmax(predictions, axis=-1), y.dtype)
    hits = ops.cast(ops.equal(predicted, y), mask.dtype)
    return ops.sum(losses * weight), ops.sum(mask), ops.sum(hits * mask)


def steps_per_call(
    steps_per_epoch: int, epochs_per_log: int, batch_size: int, timesteps: int, features: int, runs: int = 1
) -> int:
    """Steps per compiled call: one log window if it fits the memory and step caps.

    ``runs``: runs trained together in one call (vectorised repeats), each with its own data.
    """
    step_bytes = batch_size * timesteps * max(features, 1) * 4 * 2 * max(runs, 1)
    by_memory = max(1, MAX_CALL_BYTES // step_bytes)
    return int(max(1, min(steps_per_epoch * epochs_per_log, MAX_STEPS_PER_CALL, by_memory)))
