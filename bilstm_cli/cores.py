"""Sharing the CPU cores between worker processes (compare's and tune's ``--workers``).

Each worker keeps to its own share of the cores (its CPU affinity). XLA's CPU runtime sizes its
thread pools by the cores a process may use, not by any flag, so unpinned JAX workers each ran
a pool as large as the machine and, two of them on two cores, lost a third of their time to each
other (the card's comparison: 34 s -> 24 s pinned). TensorFlow's workers already keep to their
``threads``. Results do not depend on it: a pinned worker computes bit for bit what one process
does (tested). Shares are consecutive CPU numbers; pinning needs CPU affinity (Linux) and at
least as many usable cores as workers, else workers run unpinned.
"""

from __future__ import annotations

import contextlib
import os


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def core_shares(workers: int) -> list[set[int]] | None:
    """Disjoint sets of this process's cores, one per worker (the remainder to none), or None
    where that is not possible: one worker, fewer cores than workers, no CPU affinity here."""
    if workers < 2 or not hasattr(os, "sched_getaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < workers:
        return None
    size = len(cores) // workers
    return [set(cores[index * size : (index + 1) * size]) for index in range(workers)]


class CoreShares:
    """The shares of a pool's workers, handed out in start order (made in the driver, passed
    to each worker's initializer, which calls :meth:`take`)."""

    def __init__(self, context, workers: int):
        self.shares = core_shares(workers)
        # CPU threads each worker's backend should use
        self.threads = len(self.shares[0]) if self.shares else max(1, usable_cores() // workers)
        self._next = context.Value("i", 0)

    def take(self) -> None:
        """Pin the calling (worker) process to the next share."""
        with self._next.get_lock():
            slot = self._next.value
            self._next.value += 1
        if self.shares is not None:
            # a cpuset or sandbox may refuse it: the worker then runs unpinned
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, self.shares[slot % len(self.shares)])


def current_cores() -> list[int] | None:
    """The cores this process may use, for the record of a run."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
