"""Graceful interruption: the first Ctrl-C / SIGTERM asks the run to stop at the next safe
point (where a checkpoint can be written); a second one exits at once.

Exiting at once cannot corrupt what is on disk, since every file is written atomically.
"""

from __future__ import annotations

import os
import signal
import threading

from .errors import EXIT_INTERRUPTED


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
