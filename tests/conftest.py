"""Shared helpers: run the CLI in-process (CliRunner) or as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    *args: str,
    input: bytes | None = None,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: float = 600,
    stdout=subprocess.PIPE,
) -> subprocess.CompletedProcess:
    """Run ``python -m bilstm_cli ARGS`` as a real process (bytes in, bytes out; ``stdout``: an
    open file to send its output to instead)."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    environment.pop("BILSTM_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "bilstm_cli", *map(str, args)],
        input=input,
        stdout=stdout,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=environment,
        timeout=timeout,
    )


def tiny_flags(
    epochs: int | None = 20,
    samples_per_epoch: int | None = 4,
    batch_size: int | None = 4,
    validation_size: int | None = 64,
    units: int | None = 6,
    log_every: int | None = 5,
    jit_compile: bool | None = False,
    seed: int | None = None,
    **settings,
) -> list[str]:
    """Command-line options for a tiny training run (a few dozen steps), as ``--set`` options so
    they work with train, compare and config alike. None leaves a key at its default;
    ``settings`` adds more keys (``checkpoint_every=10`` -> ``--set train.checkpoint_every=10``).
    """
    keys = {
        "train.epochs": epochs,
        "data.samples_per_epoch": samples_per_epoch,
        "train.batch_size": batch_size,
        "data.validation_size": validation_size,
        "model.units": units,
        "train.log_every": log_every,
        "train.jit_compile": None if jit_compile is None else str(jit_compile).lower(),
        "train.seed": seed,
    }
    for name, value in settings.items():
        section = "data" if name in DATA_KEYS else "model" if name in MODEL_KEYS else "train"
        keys[f"{section}.{name}"] = value
    return [part for key, value in keys.items() if value is not None for part in ("--set", f"{key}={value}")]


DATA_KEYS = {"task", "timesteps", "standardize", "validation_split", "threshold"}
MODEL_KEYS = {"kind", "merge", "direction", "layers", "dropout", "pooling"}


def pytest_configure(config):
    config.addinivalue_line("markers", "only_backend(name): run only when the session's backend is `name`")


def pytest_collection_modifyitems(config, items):
    """``make test`` runs the suite once per backend (BILSTM_BACKEND); some tests are for one."""
    from bilstm_cli import backend

    current = backend.name()
    for item in items:
        for marker in item.iter_markers("only_backend"):
            if marker.args[0] != current:
                item.add_marker(pytest.mark.skip(reason=f"{marker.args[0]} backend only (this session: {current})"))


def pytest_terminal_summary(terminalreporter):
    """Say loudly what a single pass did not test: `make test` runs both backends."""
    skipped: dict[str, int] = {}  # from the reports, so it also counts what pytest-xdist's workers skipped
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        if " backend only (this session: " in reason:
            name = reason.split(" backend only")[0].split()[-1]
            skipped[name] = skipped.get(name, 0) + 1
    for name, count in sorted(skipped.items()):
        terminalreporter.write_sep(
            "!", f"{count} test(s) for the {name} backend were skipped: run BILSTM_BACKEND={name} pytest too "
            "(make test runs both)", yellow=True, bold=True,
        )  # fmt: skip


@pytest.fixture
def tiny():
    """The one source of tiny-run flags: ``tiny(epochs=40, units=8)`` (see :func:`tiny_flags`)."""
    return tiny_flags


@pytest.fixture(scope="session")
def cpu_device():
    """Select the CPU once, before any test module's models touch the backend's devices."""
    from bilstm_cli.device import select_device

    return select_device("cpu")


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


def stop_request_at(check: int, phase: int = 1) -> type:
    """A stand-in for ``train``'s StopRequest (monkeypatch it in): the ``phase``-th request made
    (1: the validation phase, 2: a refit) asks to stop at its ``check``-th check, as a Ctrl-C
    there would; the others never do. A new class per call: it counts its own phases."""

    class StopAt:
        phases = 0

        def __init__(self, message: str):
            type(self).phases += 1
            self.phase, self.checks = type(self).phases, 0

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            return None

        @property
        def requested(self) -> bool:
            self.checks += 1
            return self.phase == phase and self.checks == check

    return StopAt


def write_series(path, count: int, seed: int, variable: bool = False) -> None:
    """``count`` short series of two classes (a level shift and noise), as a .ts file; 3 to 6
    steps each if ``variable``, else 6."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        values = rng.normal(0.8 * (i % 2), 1.0, size=int(rng.integers(3, 7)) if variable else 6)
        rows.append(",".join(f"{v:.3f}" for v in values) + f":{'ab'[i % 2]}")
    path.write_text("@problemName Small\n@univariate true\n@classLabel true a b\n@data\n" + "\n".join(rows) + "\n")
