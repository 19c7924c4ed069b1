"""The last line of defence in cli.py (BilstmGroup): every way a command can end becomes a
documented exit code and a message for people, whatever raised it."""

from __future__ import annotations

import errno
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from bilstm_cli.cli import BilstmGroup
from bilstm_cli.errors import DataError, UsageError


def group_raising(error: BaseException) -> click.Group:
    """A BilstmGroup (the class under test) with one command that raises ``error``."""

    @click.group(cls=BilstmGroup)
    @click.option("--debug", is_flag=True)
    def group(debug):
        pass

    @group.command()
    def work():
        click.echo("partial output")
        raise error

    return group


def invoke(error: BaseException, *options: str):
    return CliRunner().invoke(group_raising(error), [*options, "work"])


@pytest.mark.parametrize(
    "error, code, first_line",
    [
        (UsageError("bad flag", "use another"), 2, "error: bad flag"),
        (DataError("broken file"), 1, "error: broken file"),
        (KeyboardInterrupt(), 130, "error: interrupted"),
        (RuntimeError("something unforeseen"), 1, "error: internal error: RuntimeError: something unforeseen"),
        (OSError(errno.ENOSPC, "No space left on device", "/data/out.csv"), 1, "error: no space left on the device"),
    ],
)
def test_each_ending_has_its_exit_code_and_one_message(error, code, first_line):
    result = invoke(error)
    assert result.exit_code == code, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(first_line), lines
    assert "Traceback" not in result.stderr
    assert ("report it" in result.stderr) == isinstance(error, RuntimeError)  # only a bug asks for a report


READER_LEFT = """
import click
from bilstm_cli.cli import BilstmGroup

@click.group(cls=BilstmGroup)
def group():
    pass

@group.command()
def work():
    for line in range(100_000):  # more than a pipe holds: the writes fail once the reader is gone
        click.echo(f"line {line}")

group(["work"])
"""


def test_a_reader_that_left_is_not_an_error():
    """`... | head -1`: the writer's next write fails (EPIPE); that is the reader's choice, not a failure."""
    writer = subprocess.Popen([sys.executable, "-c", READER_LEFT], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert writer.stdout.readline() == b"line 0\n"
    writer.stdout.close()  # the reader leaves
    assert writer.wait(timeout=60) == 0
    assert writer.stderr.read() == b""


def test_debug_shows_the_traceback_of_an_internal_error():
    result = invoke(RuntimeError("something unforeseen"), "--debug")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "RuntimeError: something unforeseen" in result.stderr
    assert "report it" not in result.stderr  # the traceback is what to report


SWALLOWED_INTERRUPT = """
import gc, os, signal, sys
import click
from bilstm_cli.cli import BilstmGroup
from bilstm_cli.signals import StopRequest

@click.group(cls=BilstmGroup)
def group():
    pass

@group.command()
def work():
    fired = []

    def callback(phase, info):  # as JAX's start-up runs: a Ctrl-C lands inside a gc callback
        if not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(1000))  # the handler runs here; gc discards its KeyboardInterrupt

    gc.callbacks.append(callback)
    gc.collect()
    gc.callbacks.remove(callback)
    with StopRequest() as stop:
        print("stop requested:", stop.requested, flush=True)
    print("finished the work", flush=True)

group(sys.argv[1:])
"""


def test_a_ctrl_c_that_a_library_swallows_still_stops_the_command():
    """Python discards an exception raised in a garbage-collection callback; the interrupt must
    still reach the training loop (its StopRequest starts as requested) and the exit code."""
    result = subprocess.run([sys.executable, "-c", SWALLOWED_INTERRUPT, "work"], capture_output=True, text=True)
    assert "KeyboardInterrupt" in result.stderr  # Python's "Exception ignored in ...": it was swallowed
    assert "stop requested: True" in result.stdout
    assert result.returncode == 130 and "error: interrupted" in result.stderr


def test_signals_in_a_deferred_block_wait_for_its_end():
    """What starting Ray relies on: a Ctrl-C or SIGTERM inside the block interrupts nothing there
    and is reported after it (the caller then stops); the handlers are restored."""
    import os
    import signal

    from bilstm_cli.signals import deferred_signals

    before = signal.getsignal(signal.SIGINT)
    finished = False
    with pytest.raises(KeyboardInterrupt):
        with deferred_signals() as deferred:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            sum(range(100_000))  # the handlers run here, and must not raise
            finished = True
        assert deferred.arrived == "SIGINT"  # the first one
        raise KeyboardInterrupt  # what the caller does once it has cleaned up
    assert finished and signal.getsignal(signal.SIGINT) is before
