"""``train --dry-run`` / ``compare --dry-run``: the plan and a measured estimate; nothing trained
for real, nothing written."""

from __future__ import annotations

import json

import pytest

from .conftest import assert_clean_error

pytestmark = pytest.mark.usefixtures("cpu_device")


def test_train_dry_run_plans_and_writes_nothing(cli, tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("train", *tiny(epochs=40, seed=1), "--out", "planned", "--dry-run")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "dry run: nothing is trained or written" in text and "-> planned" in text
    assert "estimated time:" in text and "probe: compile" in text and "epochs: 40" in text  # the config
    plan = json.loads(cli("train", *tiny(epochs=40), "--dry-run", "--json").stdout)
    assert plan["runs"] == 1 and plan["programs"] == 1 and plan["epochs"] == 40 and plan["seed"] is None
    assert 1 <= plan["probe"]["epochs"] <= 40 and plan["estimate_seconds"] >= plan["probe"]["compile_seconds"] > 0
    assert list(tmp_path.iterdir()) == []  # no run directory, no runs/ folder


def test_compare_dry_run_counts_runs_and_programs(cli, tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    flags = ["--modes", "sum,concat", "--vary", "model.cell=lstm,gru", "--repeats", "2", "--seed", "1"]
    result = cli("compare", *tiny(epochs=10), *flags, "--workers", "1", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["runs"] == 8 and len(plan["variants"]) == 4
    assert plan["programs"] == 2  # merge modes share a program; each cell is its own
    assert plan["probe"]["runs"] == 4 and plan["estimate_seconds"] > 0
    people = cli("compare", *tiny(epochs=10), *flags, "--workers", "1", "--dry-run")
    assert "= 8 runs in 2 job(s), 2 compiled program(s)" in people.stdout
    assert list(tmp_path.iterdir()) == []


def test_dry_run_with_resume_is_refused(cli, tmp_path):
    assert_clean_error(cli("train", "--resume", tmp_path, "--dry-run"), 2, "--dry-run")
    assert_clean_error(cli("compare", "--resume", tmp_path, "--dry-run"), 2, "--dry-run")


def test_tune_dry_run_plans_the_search_and_the_confirmation(cli, tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    flags = ["--search", "model.units=int:4:8", "--trials", "3", "--top-k", "2", "--confirm-repeats", "2"]
    result = cli("tune", *tiny(epochs=10, seed=1), *flags, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["command"] == "tune" and plan["space"] == ["model.units: int:4:8"] and plan["trials"] == 3
    assert plan["confirm_runs"] == (2 + 1) * 2  # finalists and the baseline, paired repeats
    one_run = plan["estimate_seconds_one_run"]
    assert plan["search_seconds"] == pytest.approx(3 * one_run)
    assert plan["estimate_seconds"] == pytest.approx(plan["search_seconds"] + plan["confirm_seconds"] + one_run)
    people = cli("tune", *tiny(epochs=10, seed=1), *flags, "--dry-run")
    assert "search: 1 dimension(s), 3 trials" in people.stdout and "confirmation: 6 runs" in people.stdout
    assert list(tmp_path.iterdir()) == []  # nothing written: no tune directory, no study
    assert_clean_error(cli("tune", "--resume", tmp_path, "--dry-run"), 2, "--dry-run")
