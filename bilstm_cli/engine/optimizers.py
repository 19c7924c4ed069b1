"""Optimizers for stacked copies: Keras' update rules, elementwise, with per-copy settings.

A program's copies train as separate models: Adam, AdamW, SGD and RMSprop update each weight
from its own gradient and slots only, so one update over the stacked arrays is R separate
updates. What Keras' optimizer objects cannot express is per copy: the learning rate (a grid
over learning rates, a schedule, reduce-on-plateau), the step count (a copy that stopped early
keeps its weights and its count), and gradient clipping by each copy's own norm. The formulas
are Keras 3's, operation by operation (tested against ``keras.optimizers`` on one model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..backend import ops

EPSILON = 1e-7  # Keras' default for Adam, AdamW and RMSprop


@dataclass(frozen=True)
class OptimizerSettings:
    """What the update does (part of the compiled program; the learning rate is not).

    Args:
        name: ``adam``, ``adamw``, ``sgd`` or ``rmsprop``.
        weight_decay: AdamW's decoupled decay (``w -= w * decay * lr`` before the update).
        clipnorm: clip each weight's gradient (per copy) to this norm; None: no clipping.
        schedule: ``constant`` or ``cosine`` (decay to ``alpha`` x the rate over ``decay_steps``).
        decay_steps: steps of the cosine schedule.
        alpha: the cosine schedule's final fraction of the learning rate.
    """

    name: str = "adam"
    weight_decay: float = 0.0
    clipnorm: float | None = None
    schedule: str = "constant"
    decay_steps: int = 1
    alpha: float = 0.0
    beta_1: float = 0.9
    beta_2: float = 0.999
    rho: float = 0.9

    def slots(self) -> int:
        """Optimizer arrays per parameter array."""
        return {"adam": 2, "adamw": 2, "sgd": 0, "rmsprop": 1}[self.name]


def learning_rate_at(settings: OptimizerSettings, base, iterations):
    """The learning rate of each copy at its step ``iterations`` (Keras' ``CosineDecay`` for
    ``cosine``: ``base * ((1 - alpha) * 0.5 * (1 + cos(pi * min(t, T) / T)) + alpha)``)."""
    if settings.schedule != "cosine":
        return base
    progress = ops.minimum(ops.cast(iterations, "float32"), float(settings.decay_steps)) / settings.decay_steps
    cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
    return base * ((1 - settings.alpha) * cosine + settings.alpha)


def learning_rates_at_steps(settings: OptimizerSettings, base, steps):
    """NumPy twin of :func:`learning_rate_at` for reports: ``(len(steps), C)``, the rate each
    copy's step ``steps[i]`` (0-based: the step count before it) uses, from base rates ``(C,)``."""
    import numpy as np

    base = np.asarray(base, np.float64)[None, :]
    steps = np.asarray(steps, np.float64)[:, None]
    if settings.schedule != "cosine":
        return np.repeat(base, steps.shape[0], axis=0)
    progress = np.minimum(steps, settings.decay_steps) / settings.decay_steps
    cosine = 0.5 * (1.0 + np.cos(math.pi * progress))
    return base * ((1 - settings.alpha) * cosine + settings.alpha)


def _per_row(values, owner, like):
    """Per-copy values ``(C,)`` for an array's rows (``owner``: static copy index of each
    row), shaped to broadcast against it; a scalar when the program has one copy."""
    if values.shape[0] == 1:
        return values[0]
    rows = ops.take(values, owner, axis=0)
    return ops.reshape(rows, (rows.shape[0],) + (1,) * (len(like.shape) - 1))


def clip_by_norm(gradient, clipnorm: float):
    """Keras' per-variable ``clipnorm``, with each row (one copy's weight) as the variable."""
    axes = tuple(range(1, len(gradient.shape)))
    l2sum = ops.sum(ops.square(gradient), axes, keepdims=True)
    pred = l2sum > 0
    l2sum_safe = ops.where(pred, l2sum, ops.ones_like(l2sum))
    l2norm = ops.where(pred, ops.sqrt(l2sum_safe), l2sum)
    return gradient * clipnorm / ops.maximum(l2norm, clipnorm)


def apply_updates(settings: OptimizerSettings, params, grads, slots, iterations, learning_rate, owners, active):
    """One optimizer step for every copy.

    Args:
        params, grads: parameter arrays and their gradients (leading axis: rows owned by copies).
        slots: per parameter array, its optimizer arrays (Adam: m, v; RMSprop: v; SGD: none).
        iterations: ``(C,)`` int32 steps taken by each copy so far.
        learning_rate: ``(C,)`` float32 base learning rate of each copy.
        owners: per parameter array, ``(rows,)`` int32 (NumPy, part of the program): the copy of each row.
        active: ``(C,)`` bool: copies that train; the others keep weights, slots and count.
            None: every copy trains (no early stopping, or one copy: its loop ends when it stops).

    Returns:
        (params, slots, iterations), updated.
    """
    rate = learning_rate_at(settings, learning_rate, iterations)
    step = ops.cast(iterations + 1, "float32")
    new_params, new_slots = [], []
    for param, grad, slot, owner in zip(params, grads, slots, owners):
        lr = _per_row(rate, owner, param)
        keep = None if active is None else _per_row(active, owner, param)
        if settings.clipnorm:
            grad = clip_by_norm(grad, settings.clipnorm)
        updated = param
        if settings.name == "adamw" and settings.weight_decay:
            updated = updated - updated * settings.weight_decay * lr
        if settings.name in ("adam", "adamw"):
            m, v = slot
            local_step = _per_row(step, owner, param)
            beta_1_power = ops.power(settings.beta_1, local_step)
            beta_2_power = ops.power(settings.beta_2, local_step)
            alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
            m = m + (grad - m) * (1 - settings.beta_1)
            v = v + (ops.square(grad) - v) * (1 - settings.beta_2)
            updated = updated - (m * alpha) / (ops.sqrt(v) + EPSILON)
            slot = (m, v) if keep is None else (ops.where(keep, m, slot[0]), ops.where(keep, v, slot[1]))
        elif settings.name == "rmsprop":
            (velocity,) = slot
            velocity_new = settings.rho * velocity + (1 - settings.rho) * ops.square(grad)
            updated = updated - (lr * grad) / ops.sqrt(velocity_new + EPSILON)
            slot = (velocity_new if keep is None else ops.where(keep, velocity_new, velocity),)
        else:  # sgd
            updated = updated - lr * grad
        new_params.append(updated if keep is None else ops.where(keep, updated, param))
        new_slots.append(tuple(slot))
    new_iterations = iterations + 1 if active is None else ops.where(active, iterations + 1, iterations)
    return new_params, new_slots, new_iterations


def initial_slots(settings: OptimizerSettings, shapes: list[tuple[int, ...]]) -> list[tuple]:
    """Zeroed optimizer arrays (NumPy) for parameter arrays of these shapes."""
    import numpy as np

    return [tuple(np.zeros(shape, np.float32) for _ in range(settings.slots())) for shape in shapes]
