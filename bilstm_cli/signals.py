"""Graceful interruption: the first Ctrl-C / SIGTERM asks the run to stop at the next safe
point (where a checkpoint can be written); a second one exits at once.

Exiting at once cannot corrupt what is on disk, since every file is written atomically.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

from .errors import EXIT_INTERRUPTED

# The signal that arrived while a command was starting (see start_up_guard), or None.
_start_up_signal: str | None = None


@contextlib.contextmanager
def start_up_guard() -> Iterator[None]:
    """Around a whole command: Ctrl-C raises KeyboardInterrupt as usual, and is also remembered.

    Python discards an exception raised inside a garbage-collection callback ("Exception
    ignored in ..."), and JAX runs such callbacks while it starts: a Ctrl-C landing there would
    be lost and the command would run to its end. Remembered, it still stops the command: a
    :class:`StopRequest` that starts later begins as already requested, and
    :func:`interrupted_during_start_up` tells the CLI to exit 130 if nothing else did.
    """
    global _start_up_signal
    _start_up_signal = None
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _remember_and_raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def interrupted_during_start_up() -> bool:
    """Whether a signal reached :func:`start_up_guard` (even if its KeyboardInterrupt was lost)."""
    return _start_up_signal is not None


class Deferred:
    """What :func:`deferred_signals` saw: the name of the first signal, or None."""

    arrived: str | None = None


@contextlib.contextmanager
def deferred_signals() -> Iterator[Deferred]:
    """SIGINT and SIGTERM are only noted while the block runs; the caller obeys them after it.

    For code that must not be interrupted halfway, e.g. starting Ray: a KeyboardInterrupt
    inside ``ray.init`` can crash Ray's own threads (a segfault, orphaned helper processes).
    After the block, ``arrived`` names the first signal: clean up in order, then stop.
    """
    deferred = Deferred()
    if threading.current_thread() is not threading.main_thread():
        yield deferred
        return

    def remember(signum: int, frame) -> None:
        deferred.arrived = deferred.arrived or signal.Signals(signum).name

    previous = {signum: signal.signal(signum, remember) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield deferred
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _remember_and_raise(signum: int, frame) -> None:
    global _start_up_signal
    _start_up_signal = signal.Signals(signum).name
    raise KeyboardInterrupt


class StopRequest:
    """Context manager installing the two-stage handlers for SIGINT and SIGTERM.

    Args:
        notice: written to stderr when the first signal arrives (with a plain ``os.write``:
            a signal handler must not wait for a lock that the interrupted code may hold).

    Example:
        >>> with StopRequest() as stop:  # doctest: +SKIP
        ...     while not stop.requested:
        ...         train_a_little()
    """

    def __init__(self, notice: str = ""):
        self.requested = False
        self.signal_name: str | None = None
        self._notice = notice
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if _start_up_signal is not None:  # a Ctrl-C during start-up whose KeyboardInterrupt was lost
            self.requested, self.signal_name = True, _start_up_signal
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame) -> None:
        if self.requested:
            os._exit(EXIT_INTERRUPTED)
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        if self._notice:
            os.write(2, f"\n{self.signal_name}: {self._notice}\n".encode())
