"""The tutorial's task generator: labels match the definition, are monotone, seeds behave."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bilstm_cli.data.dataset import SEQUENCE
from bilstm_cli.data.generator import cumulative_sum_task, stream_rng
from bilstm_cli.data.labels import encode_labels


@settings(max_examples=60, deadline=None)
@given(
    samples=st.integers(1, 50),
    timesteps=st.integers(1, 40),
    threshold=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_labels_follow_the_tutorial_definition(samples, timesteps, threshold, seed):
    data = cumulative_sum_task(samples, timesteps, threshold, np.random.default_rng(seed))
    assert data.x.shape == (samples, timesteps, 1) and data.x.dtype == np.float32
    assert data.y.shape == (samples, timesteps)
    assert ((data.x >= 0) & (data.x < 1)).all()
    limit = timesteps * threshold
    for sequence, labels in zip(data.x[:, :, 0], data.y):
        expected = [0 if total < limit else 1 for total in np.cumsum(sequence.astype(np.float64))]
        assert labels.tolist() == expected
    assert (np.diff(data.y, axis=1) >= 0).all(), "labels must be a run of 0s then a run of 1s"


def test_sum_exactly_at_the_limit_is_labelled_one():
    class Fixed:  # a generator that returns chosen values, to hit the edge exactly
        def random(self, shape, dtype):
            return np.full(shape, 0.25, dtype=dtype)

    data = cumulative_sum_task(1, 10, 0.25, Fixed())  # limit 2.5, reached exactly at step 9
    assert data.y[0].tolist() == [0] * 9 + [1]


def test_same_seed_same_data_different_seed_different_data():
    a = cumulative_sum_task(100, 10, rng=np.random.default_rng(7))
    b = cumulative_sum_task(100, 10, rng=np.random.default_rng(7))
    c = cumulative_sum_task(100, 10, rng=np.random.default_rng(8))
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x)


def test_sequence_task_labels_are_the_final_step_label():
    per_step = cumulative_sum_task(30, 10, 0.5, np.random.default_rng(1))
    per_sequence = cumulative_sum_task(30, 10, 0.5, np.random.default_rng(1), task=SEQUENCE)
    assert per_sequence.task == SEQUENCE
    assert np.array_equal(per_sequence.y, per_step.y[:, -1])


def test_streams_are_independent_and_reproducible():
    first = stream_rng(3, 1, 0).random(5)
    assert np.array_equal(first, stream_rng(3, 1, 0).random(5))
    assert not np.array_equal(first, stream_rng(3, 1, 1).random(5))
    assert not np.array_equal(first, stream_rng(3, 2, 0).random(5))


def test_encode_labels_numbers_and_names():
    codes, classes = encode_labels([0, 2, 1.0, "1"], "t")
    assert codes.tolist() == [0, 2, 1, 1] and classes is None
    codes, classes = encode_labels(["walk", "run", "walk"], "t")
    assert classes == ["run", "walk"] and codes.tolist() == [1, 0, 1]


@settings(max_examples=25, deadline=None)
@given(
    samples=st.integers(1, 9),
    batch=st.integers(1, 4),
    task=st.sampled_from(["per-step", "sequence"]),
    weighted=st.booleans(),
    start=st.integers(0, 5),
)
def test_online_batches_are_each_epochs_dataset_in_batches(samples, batch, task, weighted, start):
    """Issue 24: the online source writes a range of epochs straight into arrays; they must be
    exactly :func:`make_batches` of each epoch's dataset (filler sequences included)."""
    from bilstm_cli.config.schema import DataConfig
    from bilstm_cli.data.batches import Batches, OnlineSource, make_batches

    data = DataConfig(task=task, samples_per_epoch=samples, timesteps=6)
    weights = np.array([0.5, 2.0], np.float32) if weighted else None
    source = OnlineSource(data, batch, seed=11, class_weights=weights)
    fast = source.batches(start, start + 3)
    expected = Batches.concatenate(
        [make_batches(source.epoch_dataset(epoch), batch, weights) for epoch in range(start, start + 3)]
    )
    for got, want in zip(fast.arrays(), expected.arrays()):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
