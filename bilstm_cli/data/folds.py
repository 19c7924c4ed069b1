"""k-fold ensembles (``train.folds``): which training sequences each member validates on, each
member's training batches, and every member's validation batches as one array.

A run with ``train.folds: k`` trains k members as one program. Member f trains on every
training sequence outside fold f and validates (early stopping) on fold f, so every sequence
trains k - 1 members and the ensemble, which averages the members' probabilities, has seen all
of them. Folds are stratified like the validation split: each class's sequences, shuffled with
the seed's split stream, are dealt to the folds in turn, so every fold holds its share of each
class and fold sizes differ by at most one.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from ..errors import DataError
from .batches import Batches, make_batches
from .dataset import PER_STEP, Dataset
from .generator import FOLD_STREAM, SHUFFLE_STREAM, SPLIT_STREAM, stream_rng

MEMBER_SEEDS = 2**31  # members' seeds are drawn below this (TensorFlow's stateless ops take int32 pairs)


def stratified_folds(dataset: Dataset, folds: int, seed: int, path: str | None = None) -> list[np.ndarray]:
    """The sequences (sorted indices) of each of ``folds`` stratified folds of ``dataset``."""
    if dataset.size < max(2, folds):
        raise DataError(
            f"{path or 'the training data'}: train.folds={folds} needs at least {max(2, folds)} training "
            f"sequences, there are {dataset.size}",
            "use fewer folds or none (--set train.folds=0)",
        )
    strata = dataset.y if dataset.task != PER_STEP else np.where(dataset.step_mask(), dataset.y, -1).max(axis=1)
    rng = stream_rng(seed, SPLIT_STREAM)
    assignment = np.empty(dataset.size, np.int64)
    dealt = 0
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        assignment[members] = (dealt + np.arange(len(members))) % folds
        dealt += len(members)
    return [np.flatnonzero(assignment == fold) for fold in range(folds)]


def member_seed(seed: int, fold: int) -> int:
    """The seed of member ``fold`` of run ``seed``'s ensemble (initial weights, shuffles,
    dropout): its own stream, so members start apart and no other run's seed is reused."""
    return int(stream_rng(seed, FOLD_STREAM, fold).integers(0, MEMBER_SEEDS))


def member_layout(dataset: Dataset, folds: list[np.ndarray], batch_size: int) -> tuple[int, int]:
    """``(batch, steps per epoch)`` shared by every member: one program needs equal shapes, so
    they are those of the member with the most training sequences."""
    most = dataset.size - min(len(fold) for fold in folds)
    batch = min(batch_size, most)
    return batch, math.ceil(most / batch)


class FoldSource:
    """Epochs over one member's training sequences in ``steps_per_epoch`` batches of
    ``batch_size`` slots (the members' shared layout), shuffled per epoch with the stream
    ``(seed, SHUFFLE, epoch)``. A member with fewer sequences than the slots spreads its
    zero-weight filler over the epoch's batches (with batch size 1, a member one sequence
    short has one all-filler step per epoch: a zero-gradient update)."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        steps_per_epoch: int,
        seed: int,
        class_weights: np.ndarray | None = None,
    ):
        self.dataset = dataset
        self.batch_size = batch_size
        self.steps_per_epoch = steps_per_epoch
        self.seed = seed
        self.class_weights = class_weights
        self.timesteps = dataset.timesteps
        self._kept: tuple[int, Batches] | None = None  # the epoch step_batches takes chunks from
        self._lock = threading.Lock()  # the loop and its prefetch thread

    def _epoch(self, epoch: int) -> Batches:
        order = stream_rng(self.seed, SHUFFLE_STREAM, epoch).permutation(self.dataset.size)
        bounds = np.round(np.linspace(0, self.dataset.size, self.steps_per_epoch + 1)).astype(np.int64)
        return Batches.concatenate(
            [
                make_batches(self.dataset.subset(order[start:stop]), self.batch_size, self.class_weights)
                for start, stop in zip(bounds[:-1], bounds[1:])
            ]
        )

    def batches(self, start_epoch: int, stop_epoch: int) -> Batches:
        return Batches.concatenate([self._epoch(epoch) for epoch in range(start_epoch, stop_epoch)])

    def step_batches(self, epoch: int, start: int, stop: int) -> Batches:
        """Steps ``start..stop-1`` of ``epoch``: the epoch is laid out once and kept while its
        chunks are taken (a long epoch trains in several calls)."""
        with self._lock:
            if self._kept is None or self._kept[0] != epoch:
                self._kept = None  # let the previous epoch go first
                self._kept = (epoch, self._epoch(epoch))
            return self._kept[1].slice(start, stop)


def fold_validation(dataset: Dataset, folds: list[np.ndarray], most_per_call: int) -> Batches:
    """Every fold's validation batches side by side: arrays ``(steps, k, batch, ...)``. The
    engine scores member f of every run on fold f only (copy c on fold ``c % k``), in one call."""
    batch = min(most_per_call, max(len(fold) for fold in folds))
    parts = [make_batches(dataset.subset(fold), batch) for fold in folds]
    steps = max(part.steps for part in parts)
    parts = [part.padded_to(steps) for part in parts]
    return Batches(*(np.stack(arrays, axis=1) for arrays in zip(*(part.arrays() for part in parts))))
