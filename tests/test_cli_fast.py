"""Commands that must stay fast: --help, config and generate never import TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bilstm_cli import __version__

from .conftest import assert_clean_error, run_bilstm

PROBE = """
import sys
from bilstm_cli.cli import main
try:
    main({args!r}, standalone_mode=False)
except SystemExit:
    pass
heavy = [name for name in ("tensorflow", "keras", "matplotlib") if name in sys.modules]
sys.stderr.write("HEAVY=" + ",".join(heavy) + "\\n")
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["train", "--help"],
        ["config", "show"],
        ["config", "validate", "configs/tutorial-bilstm.yaml"],
        ["generate", "--samples", "10", "-o", "{tmp}/x.npz"],
        ["generate", "--samples", "10", "--format", "csv"],
    ],
)
def test_light_commands_do_not_import_tensorflow(tmp_path, args):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True)
    assert "HEAVY=\n" in result.stderr, result.stderr


def test_version_and_module_entry_point():
    result = run_bilstm("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout.decode()


def test_generate_to_stdout_is_csv_and_reproducible(cli):
    first = cli("generate", "--samples", "3", "--timesteps", "5", "--seed", "11")
    second = cli("generate", "--samples", "3", "--timesteps", "5", "--seed", "11")
    other = cli("generate", "--samples", "3", "--timesteps", "5", "--seed", "12")
    assert first.exit_code == 0
    assert first.stdout.splitlines()[0] == "sequence,step,x,y"
    assert len(first.stdout.splitlines()) == 1 + 3 * 5
    assert first.stdout == second.stdout and first.stdout != other.stdout
    assert "seed 11" in first.stderr  # humans are told on stderr, stdout stays data


@pytest.mark.parametrize("fmt", ["npz", "csv", "jsonl"])
def test_generate_files_are_byte_identical_for_a_seed(cli, tmp_path, fmt):
    for name in ("a", "b"):
        assert cli("generate", "--samples", "50", "--seed", "5", "-o", tmp_path / f"{name}.{fmt}").exit_code == 0
    assert (tmp_path / f"a.{fmt}").read_bytes() == (tmp_path / f"b.{fmt}").read_bytes()


def test_generate_without_seed_reports_the_seed_it_drew(cli, tmp_path):
    result = cli("generate", "--samples", "4", "-o", tmp_path / "a.npz")
    seed = int(result.stderr.rsplit("seed", 1)[1])
    again = cli("generate", "--samples", "4", "--seed", seed, "-o", tmp_path / "b.npz")
    assert again.exit_code == 0
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_generate_uses_config_and_set(cli, tmp_path):
    result = cli(
        "generate",
        "--config",
        "configs/tutorial-bilstm.yaml",
        "--set",
        "data.timesteps=6",
        "--samples",
        "2",
        "-o",
        tmp_path / "d.npz",
    )
    assert result.exit_code == 0
    with np.load(tmp_path / "d.npz") as archive:
        assert archive["X"].shape == (2, 6, 1)


def test_generate_threshold_and_sequence_task(cli, tmp_path):
    cli(
        "generate",
        "--samples",
        "200",
        "--threshold",
        "0.5",
        "--task",
        "sequence",
        "--seed",
        "1",
        "-o",
        tmp_path / "d.npz",
    )
    with np.load(tmp_path / "d.npz") as archive:
        assert archive["y"].shape == (200,)
        assert 0.3 < archive["y"].mean() < 0.7  # half the sums reach T/2


def test_generate_refuses_absurd_sizes_before_allocating(cli, tmp_path):
    result = cli("generate", "--samples", "100000000", "--timesteps", "1000000", "-o", tmp_path / "x.npz")
    assert_clean_error(result, 2, "refusing")
    assert not (tmp_path / "x.npz").exists()


def test_generate_bad_values(cli, tmp_path):
    assert_clean_error(cli("generate", "--samples", "0"), 2, "--samples")
    assert_clean_error(cli("generate", "--timesteps", "-1"), 2, "data.timesteps")
    assert_clean_error(cli("generate", "-o", tmp_path / "x.xlsx"), 2, "cannot tell the format")
    assert_clean_error(cli("generate", "-o", tmp_path), 2, "directory")


def test_generate_into_an_unwritable_place_is_a_clear_error(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = cli("generate", "--samples", "2", "-o", blocker / "x.csv")
    assert_clean_error(result, 1, "cannot write", "x.csv")
    assert blocker.read_text() == "not a folder"


def test_generate_warns_when_every_label_is_the_same(cli, tmp_path):
    """The sequence task's final label at the default threshold is (almost) always 1."""
    result = cli("generate", "--task", "sequence", "--samples", "50", "--seed", "1", "-o", tmp_path / "a.csv")
    assert result.exit_code == 0 and "warning: every label is 1" in result.stderr and "--threshold 0.5" in result.stderr
    result = cli("generate", "--task", "sequence", "--threshold", "0.5", "--seed", "1", "-o", tmp_path / "b.csv")
    assert result.exit_code == 0 and "warning" not in result.stderr
