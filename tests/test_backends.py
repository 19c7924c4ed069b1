"""Backends: the choice is recorded, and a model trained under one backend runs under the other.

Every command runs in its own process here: a process loads one Keras backend, once.
"""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import pytest
import yaml

from .conftest import assert_clean_error, json_lines, run_bilstm, tiny_flags

BACKENDS = ("tensorflow", "jax")
# per-sequence labels on variable-length data: the masked model, a softmax head would need names
TRAIN = tiny_flags(epochs=6, samples_per_epoch=8, batch_size=8, validation_size=32, units=5, log_every=3, seed=4)

pytestmark = pytest.mark.only_backend("tensorflow")  # subprocesses choose their own: run once


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run per backend, and a ragged input file to predict on."""
    folder = tmp_path_factory.mktemp("backends")
    made = {}
    for name in BACKENDS:
        result = run_bilstm("train", *TRAIN, "--backend", name, "--out", folder / name, "--quiet")
        assert result.returncode == 0, result.stderr.decode()
        made[name] = folder / name
    lines = []
    rng = np.random.default_rng(0)
    for length in (3, 10, 7, 1):  # ragged: padding and masking take part
        x = rng.random(length).round(6).tolist()
        lines.append(json.dumps({"x": x, "y": [int(v > 0.5) for v in x]}))
    data = folder / "ragged.jsonl"
    data.write_text("\n".join(lines) + "\n")
    return made, data


def probabilities(run, data, backend: str) -> np.ndarray:
    result = run_bilstm("predict", run, data, "--backend", backend)
    assert result.returncode == 0, result.stderr.decode()
    rows = list(csv.DictReader(io.StringIO(result.stdout.decode())))
    return np.array([float(row["probability"]) for row in rows])


@pytest.mark.parametrize("trained", BACKENDS)
def test_a_model_predicts_the_same_under_either_backend(runs, trained):
    made, data = runs
    outputs = {backend: probabilities(made[trained], data, backend) for backend in BACKENDS}
    assert outputs["tensorflow"].shape == (21,)  # every real step of the 4 sequences, no padding
    np.testing.assert_allclose(outputs["jax"], outputs["tensorflow"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("trained", BACKENDS)
def test_evaluate_scores_agree_across_backends(runs, trained):
    made, data = runs
    scores = []
    for backend in BACKENDS:
        result = run_bilstm("evaluate", made[trained], "--data", data, "--backend", backend, "--json")
        assert result.returncode == 0, result.stderr.decode()
        scores.append(json_lines(result.stdout.decode())[-1])
    assert scores[0]["loss"] == pytest.approx(scores[1]["loss"], abs=1e-5)
    assert scores[0]["accuracy"] == scores[1]["accuracy"]


def test_the_backend_and_its_version_are_recorded(runs):
    made, _ = runs
    for name, run in made.items():
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["backend"] == name
        assert metrics["versions"][name]  # e.g. tensorflow: 2.21.0, jax: 0.10.2
        assert yaml.safe_load((run / "config.yaml").read_text())["train"]["backend"] == name


def test_environment_variable_chooses_and_flag_overrides(tmp_path):
    result = run_bilstm("config", "show", "--backend", "jax", env={"BILSTM_BACKEND": "tensorflow"})
    assert yaml.safe_load(result.stdout)["train"]["backend"] == "jax"
    result = run_bilstm(
        "train", *TRAIN, "--epochs", "1", "--out", tmp_path / "r", "--quiet", env={"BILSTM_BACKEND": "jax"}
    )
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["backend"] == "jax"


def test_unknown_backend_in_the_environment_is_a_usage_error(tmp_path):
    result = run_bilstm("train", *TRAIN, "--out", tmp_path / "r", env={"BILSTM_BACKEND": "torch"})
    assert_clean_error(result, 2, "BILSTM_BACKEND", "'torch' is not one of", "'tensorflow', 'jax'")


def test_worker_processes_inherit_the_backend_chosen_by_flag(tmp_path):
    """Spawned workers import Keras before they read the config: the flag's choice must reach them."""
    args = ["compare", "--modes", "sum,ave", "--repeats", "2", *TRAIN, "--backend", "jax", "--workers", "2"]
    args += ["--set", "compare.runs_per_program=2"]  # two programs, one per worker
    result = run_bilstm(*args, "--out", tmp_path / "c", "--quiet", env={"BILSTM_BACKEND": "tensorflow"})
    assert result.returncode == 0, result.stderr.decode()
    records = [json.loads(p.read_text()) for p in (tmp_path / "c" / "results").rglob("*.json")]
    assert len(records) == 4 and {r["worker"]["versions"]["backend"] for r in records} == {"jax"}
    assert len({r["worker"]["pid"] for r in records}) == 2  # two processes did the work


def test_the_compile_cache_keeps_its_newest_programs(tmp_path, monkeypatch):
    from bilstm_cli.backend import CACHE_FILES, compile_cache_directory

    monkeypatch.setenv("BILSTM_XLA_CACHE", str(tmp_path))
    folder = tmp_path / "jax"
    folder.mkdir()
    for age in range(CACHE_FILES + 5):
        program = folder / f"program-{age}"
        program.write_text("compiled")
        os.utime(program, (10_000 - age, 10_000 - age))  # program-0 is the most recently used
    assert compile_cache_directory("jax") == folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"program-{age}" for age in range(CACHE_FILES))
    monkeypatch.setenv("BILSTM_XLA_CACHE", "off")
    assert compile_cache_directory("jax") is None


def test_jax_programs_go_to_the_compile_cache_and_off_keeps_none(tmp_path):
    flags = [*tiny_flags(epochs=4, log_every=2), "--backend", "jax", "--seed", "1", "--quiet"]
    cached = run_bilstm("train", *flags, "--out", tmp_path / "a", env={"BILSTM_XLA_CACHE": str(tmp_path / "cache")})
    assert cached.returncode == 0, cached.stderr.decode()
    assert len(list((tmp_path / "cache" / "jax").iterdir())) >= 2  # the training chunk, evaluation, ...
    off_env = {"BILSTM_XLA_CACHE": "off", "XDG_CACHE_HOME": str(tmp_path / "home")}
    off = run_bilstm("train", *flags, "--out", tmp_path / "b", env=off_env)
    assert off.returncode == 0, off.stderr.decode()
    assert not (tmp_path / "home" / "bilstm").exists()  # (matplotlib keeps its font list there)

    def scores(run):  # every column but the wall time
        return [line.rsplit(",", 1)[0] for line in (run / "history.csv").read_text().splitlines()]

    assert scores(tmp_path / "a") == scores(tmp_path / "b")  # the cache changes nothing but time
