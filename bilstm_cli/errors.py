"""The project's exception types and the exit codes they map to.

The core raises these; only ``cli.py`` turns them into exit codes and messages.
Exit codes follow the project convention: 0 success, 1 failure while running,
2 usage or configuration error, 130 interrupted.
"""

from __future__ import annotations

import errno
import os

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class BilstmError(Exception):
    """Base class: a message for people and the exit code that goes with it.

    Args:
        message: what is wrong and where, in one line.
        hint: optional second line saying how to fix it.
    """

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(BilstmError):
    """The configuration (file, --set, flags) is invalid."""

    exit_code = EXIT_USAGE


class UsageError(BilstmError):
    """The command line asks for something impossible (missing file, unknown variant...)."""

    exit_code = EXIT_USAGE


class DeviceError(UsageError):
    """The requested device does not exist on this machine."""


class DataError(BilstmError):
    """A dataset file exists but its contents are wrong."""


class ModelError(BilstmError):
    """A model file or run directory cannot be used."""


class TrainingError(BilstmError):
    """Training failed while running (for example a NaN loss)."""


class Interrupted(BilstmError):
    """The user interrupted the run; state was saved where possible."""

    exit_code = EXIT_INTERRUPTED


def first_line(error: BaseException, limit: int = 200) -> str:
    """The first non-empty line of a library's error message (they can run to pages), for a
    one-line message of ours; the exception's type name when it has no message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:limit] if lines else type(error).__name__


class NoSpace(BilstmError):
    """A write failed because its file system is full (ENOSPC) or the user's quota is spent."""


def os_error(error: BaseException) -> BilstmError | None:
    """The project error for an OS error people fix themselves (disk full), found in ``error``
    or in what it was raised from (libraries such as Keras wrap the OSError of a failed save);
    None for anything else, which stays an internal error."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            # the file is often a temporary one beside the real output: name its folder
            where = (os.path.dirname(os.fspath(error.filename)) or ".") if error.filename else "the output"
            return NoSpace(
                f"no space left on the device holding {where}",
                "free some space, or write somewhere else (--out, -o, output.root)",
            )
        error = error.__cause__ or error.__context__
    return None
