"""`bilstm tune`: a tiny real Optuna study end to end, pruning, resume after SIGKILL, the
confirmation's fresh seeds and held-out data, and the search space's refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from .conftest import assert_clean_error, tiny_flags

optuna = pytest.importorskip("optuna")

SEED = 5
TINY = [*tiny_flags(epochs=20, log_every=5, seed=SEED), "--set", "tune.startup_trials=2"]
SPACE = ["--search", "model.units=int:4:12:log", "--search", "train.learning_rate=float:1e-4:3e-1:log"]


def invoke(*args):
    from click.testing import CliRunner

    from bilstm_cli.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "out"
    result = invoke(
        "tune",
        *SPACE,
        *TINY,
        *("--trials", 6, "--sampler", "random", "--top-k", 2, "--confirm-repeats", 2, "--workers", 1),
        *("--out", out, "--json"),
    )
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return out, lines


def test_tiny_study_writes_its_files_and_best_yaml_trains(study, tmp_path):
    out, lines = study
    assert {p.name for p in out.iterdir()} >= {
        "config.yaml",
        "study.db",
        "trials.csv",
        "summary.json",
        "best.yaml",
        "best-run",
        "confirm",
    }
    assert (out / "best-run" / "model.keras").exists() and (out / "confirm" / "summary.json").exists()
    trials = [line for line in lines if line["event"] == "trial"]
    assert [t["number"] for t in trials] == list(range(6))
    finished = lines[-1]
    assert finished["event"] == "finished"
    assert finished["winner"]["name"] in {"baseline"} | {f["name"] for f in finished["finalists"]}
    table = pd.read_csv(out / "trials.csv")
    assert list(table["number"]) == list(range(6))
    # best.yaml is a train config
    run = invoke("train", "--config", out / "best.yaml", "--out", tmp_path / "again", "--quiet")
    assert run.exit_code == 0, run.stderr
    assert (tmp_path / "again" / "model.keras").exists()


def test_pruned_trials_train_fewer_epochs(study):
    out, _ = study
    table = pd.read_csv(out / "trials.csv")
    pruned = table[table["state"] == "pruned"]
    complete = table[table["state"] == "complete"]
    assert len(pruned) >= 1, table
    assert (pruned["epochs"] < 20).all() and (complete["epochs"] == 20).all()
    assert (pruned["epochs"] >= 4).all()  # never before a fifth of the epochs: early losses are noise


def test_confirmation_uses_fresh_seeds_and_data(study):
    out, lines = study
    summary = json.loads((out / "summary.json").read_text())
    assert summary["search_seed"] == SEED
    rows = summary["confirmation"]["rows"]
    assert rows[0]["variant"] == "baseline" and len(rows) >= 2
    seeds = {seed for row in rows for seed in row["seeds"]}
    assert SEED not in seeds and len(seeds) == 2  # paired: the same two fresh seeds for every config
    for row in rows[1:]:
        assert row["search_score"] is not None and "optimism" in row and "p_holm" in row
    # generated data: the confirmation validates on a set drawn with another seed
    confirm_config = (out / "confirm" / "config.yaml").read_text()
    assert "data.validation_seed: 2018" in confirm_config
    for record in (out / "confirm" / "results").rglob("*.json"):
        assert json.loads(record.read_text())["seed"] != SEED


def _sequence_files(folder: Path) -> tuple[Path, Path]:
    train, test = folder / "train.npz", folder / "test.npz"
    for path, seed in ((train, 1), (test, 2)):
        result = invoke("generate", "--samples", 60, "--timesteps", 6, "--seed", seed, "-o", path)
        assert result.exit_code == 0, result.stderr
    return train, test


def test_search_never_reads_the_test_file(tmp_path, monkeypatch):
    from bilstm_cli import backend

    backend.select(None)
    import bilstm_cli.commands.tune as tune_command
    import bilstm_cli.data.io as io

    train, test = _sequence_files(tmp_path)
    phase = {"confirming": False}
    reads: list[tuple[str, bool]] = []
    real_read, real_confirm = io.read_dataset, tune_command._confirm

    def read(path, *args, **kwargs):
        reads.append((str(path), phase["confirming"]))
        return real_read(path, *args, **kwargs)

    def confirm(*args, **kwargs):
        phase["confirming"] = True  # the search is over (the best run reads the test file too)
        return real_confirm(*args, **kwargs)

    monkeypatch.setattr(io, "read_dataset", read)
    monkeypatch.setattr(tune_command, "_confirm", confirm)
    result = invoke(
        "tune",
        "--search",
        "model.units=choice:4,6",
        *tiny_flags(epochs=6, log_every=3, seed=SEED, units=None, validation_size=None),
        *("--data", train, "--test-data", test, "--trials", 2, "--sampler", "grid", "--pruner", "none"),
        *("--top-k", 1, "--confirm-repeats", 1, "--workers", 1, "--out", tmp_path / "out", "--quiet"),
    )
    assert result.exit_code == 0, result.stderr
    test_reads = [confirming for path, confirming in reads if path == str(test)]
    assert test_reads and all(test_reads), reads  # read, only after the search
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["confirmation"]["rows"][0]["split"] == "test"


def test_without_a_test_file_a_split_is_held_out_before_the_search(tmp_path):
    train, _ = _sequence_files(tmp_path)
    out = tmp_path / "out"
    result = invoke(
        "tune",
        "--search",
        "model.units=choice:4,6",
        *tiny_flags(epochs=4, log_every=2, seed=SEED, units=None, validation_size=None),
        *("--data", train, "--trials", 2, "--sampler", "grid", "--pruner", "none"),
        *("--top-k", 1, "--confirm-repeats", 0, "--out", out, "--quiet"),
    )
    assert result.exit_code == 0, result.stderr
    from bilstm_cli.data.io import read_dataset

    searched = read_dataset(str(out / "holdout" / "search-train.npz"))
    held = read_dataset(str(out / "holdout" / "held-out.npz"))
    assert searched.size + held.size == 60 and held.size == 12
    assert "no confirmation" in json.loads((out / "summary.json").read_text())["verdict"]
    trials = _trials(out / "study.db")
    assert sorted(t.params["model.units"] for t in trials) == [4, 6]  # the grid, each point once
    assert {t.user_attrs["pid"] for t in trials} == {os.getpid()}  # in this process by default


@pytest.mark.slow  # starts worker processes that import the backend (20-30 s on 2 busy cores)
def test_workers_train_the_trials_while_the_study_stays_in_the_driver(tmp_path):
    out = tmp_path / "out"
    result = invoke(
        "tune",
        *("--search", "model.units=choice:4,6", *tiny_flags(epochs=4, log_every=2, seed=SEED, units=None)),
        *("--trials", 2, "--sampler", "grid", "--workers", 2, "--confirm-repeats", 0, "--out", out, "--quiet"),
    )
    assert result.exit_code == 0, result.stderr
    trials = _trials(out / "study.db")
    assert sorted(t.params["model.units"] for t in trials) == [4, 6]
    assert os.getpid() not in {t.user_attrs["pid"] for t in trials}


def _states(db: Path) -> list[str]:
    """The trials' states in number order, read straight from the SQLite file (fast enough to
    catch a trial while it runs; nothing while the study is being created)."""
    import sqlite3

    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as connection:
            return [row[0] for row in connection.execute("SELECT state FROM trials ORDER BY number")]
    except sqlite3.Error:
        return []


def _trials(db: Path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
    return optuna.load_study(study_name="bilstm-tune", storage=storage).get_trials()


def _epochs_to_catch() -> int:
    """Trials long enough to be caught running (JAX trains these tiny ones several times faster)."""
    from bilstm_cli import backend

    return 200 if backend.name() == "jax" else 100


def test_resume_after_sigkill_continues_the_study(tmp_path):
    out = tmp_path / "out"
    args = [
        *("tune", "--search", "model.units=int:4:12", "--search", "train.learning_rate=float:1e-3:1e-1:log"),
        *tiny_flags(epochs=_epochs_to_catch(), log_every=20, seed=SEED),
        *("--trials", 3, "--pruner", "none", "--confirm-repeats", 0, "--out", str(out), "--quiet"),
    ]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "bilstm_cli", *map(str, args)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment)
    db = out / "study.db"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if process.poll() is not None:
                pytest.fail(f"the search ended before it was killed: {process.stderr.read().decode()}")
            states = _states(db)
            if states.count("COMPLETE") >= 1 and states[-1:] == ["RUNNING"]:
                break
        else:
            pytest.fail("no running trial to kill")
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    before = {t.number: (t.state.name, t.params, t.value) for t in _trials(db)}
    stale = [n for n, (state, _, _) in before.items() if state == "RUNNING"]
    assert len(stale) == 1

    result = invoke("tune", "--resume", out, "--quiet")
    assert result.exit_code == 0, result.stderr
    after = _trials(db)
    numbers = [t.number for t in after]
    assert numbers == list(range(len(after)))  # numbers go on, none twice
    for trial in after:
        if trial.number in before and before[trial.number][0] == "COMPLETE":
            assert (trial.state.name, trial.params, trial.value) == before[trial.number]  # kept, not rerun
    (killed,) = [t for t in after if t.number == stale[0]]
    assert killed.state.name == "FAIL" and killed.user_attrs.get("stale")
    retries = [t for t in after if t.user_attrs.get("retry_of") == stale[0]]
    # the retry has the killed trial's values (all it had drawn: it may be killed between two draws)
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert killed.params.items() <= retries[0].params.items()
    assert sum(t.state.name == "COMPLETE" for t in after) == 3
    assert (out / "best-run" / "model.keras").exists()


@pytest.mark.parametrize(
    ("search", "needle"),
    [
        ("model.unitz=int:4:16", "unknown key 'model.unitz'"),
        ("model.units=int:16:4", "empty range"),
        ("train.learning_rate=float:0:0.1:log", "log range"),
        ("train.learning_rate=float:-1:0.1:log", "log range"),
        ("model.merge=choice:sum,bogus", "model.merge='bogus'"),
        ("model.units=int:4:9000", "model.units=9000"),
        ("model.units=int:4", "expected int:LOW:HIGH"),
        ("train.seed=int:1:9", "cannot be searched"),
        ("model.units", "expected KEY=SPEC"),
    ],
)
def test_bad_search_specs_exit_2_naming_the_key(tmp_path, search, needle):
    result = invoke("tune", "--search", search, "--out", tmp_path / "out")
    assert_clean_error(result, 2, needle)
    assert not (tmp_path / "out").exists()


def test_bad_space_in_yaml_and_grid_over_a_range_exit_2(tmp_path):
    config = tmp_path / "tune.yaml"
    config.write_text("tune:\n  space:\n    model.dropout: float:0:1.5\n")
    assert_clean_error(invoke("tune", "--config", config), 2, "tune.space.model.dropout")
    result = invoke("tune", "--search", "model.units=int:4:8", "--sampler", "grid", "--out", tmp_path / "o")
    assert_clean_error(result, 2, "grid", "model.units")
    assert_clean_error(invoke("tune"), 2, "search space is empty")


def test_missing_optuna_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    assert_clean_error(invoke("tune", "--search", "model.units=int:4:8"), 2, 'pip install "bilstm[tune]"')


def test_budget_timeout_and_no_budget(tmp_path):
    # a timeout already spent: no trial starts, and a search without a scored trial fails (exit 1)
    result = invoke("tune", "--search", "model.units=int:4:8", *TINY, "--timeout", "0s", "--out", tmp_path / "a")
    assert_clean_error(result, 1, "no trial finished", "--resume")
    result = invoke("tune", "--search", "model.units=int:4:8", "--set", "tune.trials=null", "--out", tmp_path / "b")
    assert_clean_error(result, 2, "no budget")
    assert_clean_error(invoke("tune", "--search", "model.units=int:4:8", "--timeout", "soon"), 2, "tune.timeout")
