"""The README's console examples are real output: every checked example is run and compared.

Which examples are checked: a ```` ```console ```` block whose line before is the marker
``<!-- checked by tests/test_readme.py -->``. Mark a block when every command in it is
deterministic and fast (``generate`` with a seed, ``config``, ``evaluate`` / ``predict`` of the
example run); leave unmarked what prints timings or trains for long (``train``, ``compare``,
``export``) and pipes (``a | b``), which this test does not run.

Inside a checked block:

- ``$ bilstm ARGS`` runs ``bilstm ARGS`` in-process (Click's runner) in a folder holding copies
  of ``examples/`` and ``configs/``, the run ``runs/motions`` (trained by the README's own
  ``bilstm train --data examples/motions-train.ts ...`` line) and ``typo.yaml`` (the config
  ``bilstm config validate`` is shown refusing);
- ``$ echo $?`` prints the exit code of the command before;
- the lines after a command are what it prints, stdout and stderr as a terminal shows them
  (trailing spaces ignored); a line ``...`` stands for any number of lines (none included).

Numbers that depend on training (the example run's probabilities) are TensorFlow's: those
blocks are checked when the session's backend is TensorFlow.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bilstm_cli.cli import main

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- checked by tests/test_readme.py -->"
SETUP = "bilstm train --data examples/motions-train.ts --seed 1 --out runs/motions"
TYPO = "train:\n  learnig_rate: 0.01\n"  # the file `bilstm config validate typo.yaml` refuses

pytestmark = pytest.mark.usefixtures("cpu_device")


def checked_blocks() -> list[tuple[int, str]]:
    """``(line number, text)`` of every marked console block of the README."""
    text = (ROOT / "README.md").read_text()
    pattern = re.compile(re.escape(MARKER) + r"\n```console\n(.*?)\n```", re.DOTALL)
    return [(text.count("\n", 0, match.start()) + 2, match.group(1)) for match in pattern.finditer(text)]


def commands(block: str) -> list[tuple[str, list[str]]]:
    """The block's commands, each with the lines it is shown printing."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:].strip(), []))
        else:
            assert steps, f"output before the first command: {line!r}"
            steps[-1][1].append(line.rstrip())
    return steps


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` fits ``expected``, where a ``...`` line stands for any lines."""
    pattern = "".join(r"(?:.*\n)*?" if line == "..." else re.escape(line) + r"\n" for line in expected)
    return re.fullmatch(pattern, "".join(f"{line}\n" for line in actual)) is not None


def needs_training(block: str) -> bool:
    return "runs/motions" in block


BLOCKS = checked_blocks()


def test_the_readme_marks_its_deterministic_examples():
    """The marker is not lost in an edit: generate, config and the example run's blocks."""
    joined = "\n".join(block for _, block in BLOCKS)
    for command in ("$ bilstm generate", "$ bilstm config show", "$ bilstm predict runs/motions"):
        assert command in joined, f"no checked README example runs {command!r}"
    assert SETUP in (ROOT / "README.md").read_text(), "the README no longer trains the example run this way"


def test_the_matcher_takes_ellipsis_for_any_lines():
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"]) and matches(["a", "...", "d"], ["a", "d"])
    assert not matches(["a", "...", "d"], ["a", "b", "e"]) and not matches(["a", "b"], ["a", "b", "c"])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder like a checkout after the README's walk-through (the example run is trained
    when a block needs it)."""
    folder = tmp_path_factory.mktemp("readme")
    for name in ("examples", "configs"):
        shutil.copytree(ROOT / name, folder / name)
    (folder / "typo.yaml").write_text(TYPO)
    return folder


def run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.mark.parametrize("line,block", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_a_checked_example_prints_what_the_readme_shows(line, block, workdir, monkeypatch):
    if needs_training(block):
        from bilstm_cli import backend

        if backend.name() != "tensorflow":
            pytest.skip("the example run's numbers are TensorFlow's")
    monkeypatch.chdir(workdir)
    monkeypatch.delenv("BILSTM_DEBUG", raising=False)
    if needs_training(block) and not (workdir / "runs/motions/model.keras").exists():
        trained = run(shlex.split(SETUP)[1:] + ["--quiet"])
        assert trained.exit_code == 0, trained.output
    exit_code = 0
    for command, expected in commands(block):
        if command == "echo $?":
            actual = [str(exit_code)]
        else:
            words = shlex.split(command)
            assert words[0] == "bilstm" and "|" not in words, f"README.md:{line}: cannot run {command!r}"
            result = run(words[1:])
            exit_code, actual = result.exit_code, [text.rstrip() for text in result.output.splitlines()]
        shown = "\n".join(actual)
        assert matches(expected, actual), f"README.md:{line}: `{command}` printed:\n{shown}"
