"""``bilstm runs``: listing, showing and diffing run and comparison directories, without Keras."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from bilstm_cli.cli import main

from .conftest import assert_clean_error, json_lines, tiny_flags

pytestmark = pytest.mark.usefixtures("cpu_device")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Two tiny train runs (4 and 6 units), a tiny comparison, an unrelated folder."""
    folder = tmp_path_factory.mktemp("runs")

    def run(*args):
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    run("train", *tiny_flags(epochs=4, log_every=2, seed=1, units=4), "--out", folder / "small", "--quiet")
    run("train", *tiny_flags(epochs=4, log_every=2, seed=2), "--merge", "sum", "--out", folder / "big", "--quiet")
    compare = [*tiny_flags(epochs=4, log_every=2), "--modes", "sum,concat", "--repeats", "1", "--seed", "1"]
    run("compare", *compare, "--out", folder / "cmp", "--quiet")
    (folder / "notes").mkdir()
    run("train", *tiny_flags(epochs=4, log_every=2, seed=1), "--out", folder / "stopped", "--quiet")
    (folder / "stopped" / "model.keras").unlink()  # as if stopped before its model was saved
    return folder


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_runs_lists_train_runs_and_comparisons(root):
    rows = {row["name"]: row for row in json_lines(invoke("runs", root, "--json").stdout)}
    assert set(rows) == {"small", "big", "cmp", "stopped"}  # "notes" is not a run
    assert not rows["stopped"]["finished"] and rows["small"]["finished"]
    assert rows["small"]["kind"] == "train" and rows["small"]["model"] == "bilstm-concat"
    assert rows["big"]["model"] == "bilstm-sum" and rows["big"]["epochs"] == 4 and rows["big"]["finished"]
    assert rows["small"]["data"] == "generated" and rows["small"]["split"] == "validation"
    assert 0 <= rows["small"]["accuracy"] <= 1 and rows["small"]["loss"] > 0
    assert rows["cmp"]["kind"] == "compare" and rows["cmp"]["model"].endswith("(best of 2)")
    table = invoke("runs", root)
    assert table.exit_code == 0
    assert "small" in table.stdout and "compare" in table.stdout and "bilstm-sum" in table.stdout
    assert "train (unfinished)" in table.stdout
    unfinished = json_lines(invoke("runs", root, "--json", "--filter", "finished=false").stdout)
    assert [row["name"] for row in unfinished] == ["stopped"]


def test_runs_filters_and_sorts(root):
    trains = json_lines(invoke("runs", root, "--json", "--filter", "kind=train", "--sort", "name").stdout)
    assert [row["name"] for row in trains] == ["big", "small", "stopped"]
    descending = json_lines(invoke("runs", root, "--json", "--filter", "kind=train", "--sort", "-name").stdout)
    assert [row["name"] for row in descending] == ["stopped", "small", "big"]
    wildcard = json_lines(invoke("runs", root, "--json", "--filter", "model=bilstm-s*").stdout)
    assert [row["name"] for row in wildcard] == ["big", "cmp"]  # the comparison's best is bilstm-sum
    assert_clean_error(invoke("runs", root, "--filter", "colour=red"), 2, "--filter", "kind")
    assert_clean_error(invoke("runs", root, "--sort", "colour"), 2, "--sort")
    assert_clean_error(invoke("runs", root / "nowhere"), 2, "no folder")


def test_runs_show_prints_config_and_scores(root):
    shown = invoke("runs", "show", root / "small")
    assert shown.exit_code == 0
    assert "final.val_loss" in shown.stdout and "units: 4" in shown.stdout
    data = json.loads(invoke("runs", "show", root / "cmp", "--json").stdout)
    assert data["kind"] == "compare" and data["config"]["compare"]["repeats"] == 1
    assert any(key.endswith("bilstm-sum: loss") for key in data["scores"])
    assert_clean_error(invoke("runs", "show", root / "notes"), 2, "not a run")


def test_runs_diff_names_what_differs(root):
    diff = json.loads(invoke("runs", "diff", root / "small", root / "big", "--json").stdout)
    config = {d["key"]: (d["a"], d["b"]) for d in diff["differences"] if d["section"] == "config"}
    assert config["model.units"] == (4, 6) and config["model.merge"] == ("concat", "sum")
    assert config["train.seed"] == (1, 2) and "train.epochs" not in config
    assert any(d["key"] == "final.val_loss" for d in diff["differences"] if d["section"] == "scores")
    table = invoke("runs", "diff", root / "small", root / "big")
    assert table.exit_code == 0 and "model.units" in table.stdout and "config key(s) equal" in table.stdout


def test_runs_does_not_import_keras(root):
    probe = (
        "import sys\nfrom bilstm_cli.cli import main\n"
        f"try:\n    main(['runs', {str(root)!r}], standalone_mode=False)\n"
        f"    main(['runs', 'diff', {str(root / 'small')!r}, {str(root / 'cmp')!r}], standalone_mode=False)\n"
        "except SystemExit:\n    pass\n"
        "print('HEAVY=' + ','.join(n for n in ('tensorflow', 'keras', 'jax', 'matplotlib') if n in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert "HEAVY=\n" in result.stdout and "small" in result.stdout, result.stdout + result.stderr
