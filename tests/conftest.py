"""Shared helpers: run the CLI in-process (CliRunner) or as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bilstm_cli.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli():
    """Invoke ``bilstm ARGS`` in-process; returns click's Result (stdout, stderr, exit_code)."""

    def invoke(*args: str, input: str | bytes | None = None):
        return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


def run_bilstm(
    *args: str, input: bytes | None = None, cwd: Path | None = None, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run ``python -m bilstm_cli ARGS`` as a real process (bytes in, bytes out)."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    environment.pop("BILSTM_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "bilstm_cli", *map(str, args)],
        input=input,
        capture_output=True,
        cwd=cwd,
        env=environment,
        timeout=timeout,
    )


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_clean_error(result, code: int, *needles: str) -> None:
    """Exit code as expected, a short message naming the problem, no traceback.

    Works for click Results (exit_code, str stderr) and CompletedProcess (returncode, bytes).
    """
    stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    actual = result.returncode if hasattr(result, "returncode") else result.exit_code
    assert actual == code, f"exit {actual}, expected {code}: {stderr}"
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    ours = [line for line in lines if line.startswith("error:")]
    clicks = [line for line in lines if line.startswith("Error:")]
    assert ours or clicks, stderr
    if ours:
        assert len(ours) <= 2 and len(lines) <= 4, stderr
    for needle in needles:
        assert needle.lower() in stderr.lower(), f"{needle!r} not in: {stderr}"
