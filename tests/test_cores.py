"""Worker processes' shares of the CPU cores (bilstm_cli/cores.py): real spawned processes."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import pytest

from bilstm_cli.cores import CoreShares, core_shares, usable_cores

needs_two_cores = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity and at least 2 usable cores",
)


def test_no_shares_where_there_is_nothing_to_split():
    assert core_shares(1) is None
    assert core_shares(usable_cores() + 1) is None


@needs_two_cores
def test_shares_are_disjoint_and_within_this_process_cores():
    cores = set(os.sched_getaffinity(0))
    shares = core_shares(2)
    assert len(shares) == 2 and all(shares)
    assert not shares[0] & shares[1]
    assert shares[0] | shares[1] <= cores


_barrier = None


def _join(barrier) -> None:
    global _barrier
    _barrier = barrier


def _pin_and_join(shares: CoreShares, barrier) -> None:
    shares.take()
    _join(barrier)


def _cores_of_this_process(_: int) -> tuple[int, frozenset[int]]:
    _barrier.wait(timeout=60)  # both tasks run at once: two distinct workers answer
    return os.getpid(), frozenset(os.sched_getaffinity(0))


@needs_two_cores
def test_each_spawned_worker_keeps_to_its_own_share():
    """What compare's and tune's pools do: each worker pins itself in its initializer."""
    context = multiprocessing.get_context("spawn")
    shares = CoreShares(context, 2)
    assert shares.threads == len(shares.shares[0])
    barrier = context.Barrier(2)
    with ProcessPoolExecutor(
        max_workers=2, mp_context=context, initializer=_pin_and_join, initargs=(shares, barrier)
    ) as pool:
        answers = dict(pool.map(_cores_of_this_process, range(2)))
    assert len(answers) == 2  # two processes
    first, second = answers.values()
    # unpinned, each could use every core; pinned, each keeps to its own share
    assert {first, second} == {frozenset(share) for share in shares.shares}
