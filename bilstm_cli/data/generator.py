"""The tutorial's task (cumulative-sum threshold) and the seeded random streams of a run."""

from __future__ import annotations

import numpy as np

from .dataset import PER_STEP, SEQUENCE, Dataset

# Independent random streams derived from one seed (numpy SeedSequence entropy lists).
TRAIN_STREAM = 1
VALIDATION_STREAM = 2
SHUFFLE_STREAM = 3
SPLIT_STREAM = 4
STANDARDIZE_STREAM = 5
INITIAL_WEIGHTS_STREAM = 6  # a run's initial weights (engine/initializers.py)
DROPOUT_STREAM = 7  # a run's dropout masks
FOLD_STREAM = 8  # the seeds of a k-fold ensemble's members (data/folds.py)


def cumulative_sum_task(
    samples: int,
    timesteps: int,
    threshold: float = 0.25,
    rng: np.random.Generator | None = None,
    task: str = PER_STEP,
) -> Dataset:
    """The tutorial's task: uniform [0, 1) steps, label 1 once the running sum reaches the limit.

    The limit is ``threshold * timesteps`` (tutorial: ``T / 4``) and the test is
    ``0 if cumsum < limit else 1``, so a sum exactly equal to the limit is labelled 1.
    With ``task="sequence"`` the one label per sequence is the final step's label.

    Example:
        >>> d = cumulative_sum_task(2, 10, rng=np.random.default_rng(0))
        >>> d.x.shape, d.y.shape
        ((2, 10, 1), (2, 10))
    """
    rng = rng if rng is not None else np.random.default_rng()
    x = draw_sequences(samples, timesteps, rng)
    labels = cumulative_sum_labels(x, threshold).astype(np.int64)
    y = labels[:, -1].copy() if task == SEQUENCE else labels
    lengths = np.full(samples, timesteps, dtype=np.int64)
    return Dataset(x[:, :, None], y, lengths)


def draw_sequences(samples: int, timesteps: int, rng: np.random.Generator) -> np.ndarray:
    """The task's inputs: ``(samples, timesteps)`` uniform [0, 1) float32 values."""
    return rng.random((samples, timesteps), dtype=np.float32)


def cumulative_sum_labels(x: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean ``(N, T)``: whether the running sum of ``x`` ``(N, T)`` has reached ``threshold * T``."""
    # float64 running sum of the stored float32 values: labels agree with the saved data
    return np.cumsum(x, axis=1, dtype=np.float64) >= x.shape[1] * threshold


def stream_rng(seed: int, stream: int, *index: int) -> np.random.Generator:
    """A generator for one named stream (and e.g. one epoch) of a seeded run.

    Deriving each epoch's data from ``(seed, stream, epoch)`` makes every epoch reproducible
    on its own, which is what lets an interrupted run resume bit-identically and lets
    ``compare`` give every variant the same sequences.
    """
    return np.random.default_rng([seed, stream, *index])
