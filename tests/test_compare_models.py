"""``compare --save-models best|all``: a comparison keeps its models as train run directories
that evaluate and predict without retraining."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from .conftest import assert_clean_error

pytestmark = pytest.mark.usefixtures("cpu_device")


def compare_flags(tiny, out, *extra):
    return ["compare", *tiny(epochs=4, log_every=2), "--modes", "sum,concat", "--repeats", "2", "--seed", "3"] + [
        "--out",
        out,
        "--quiet",
        *extra,
    ]


def probabilities(text: str) -> np.ndarray:
    rows = list(csv.DictReader(io.StringIO(text)))
    return np.array([float(row["probability"]) for row in rows])


def test_save_models_best_keeps_the_best_repeat_of_each_variant(cli, tiny, tmp_path):
    out = tmp_path / "cmp"
    result = cli(*compare_flags(tiny, out, "--save-models", "best"))
    assert result.exit_code == 0, result.stderr
    results = {
        (r["variant"], r["repeat"]): r["final"]["loss"]
        for r in (json.loads(path.read_text()) for path in (out / "results" / "generated").glob("*.json"))
    }
    for variant in ("bilstm-sum", "bilstm-concat"):
        kept = out / "models" / "generated" / variant
        origin = json.loads((kept / "compare.json").read_text())
        best = min((0, 1), key=lambda repeat: (results[(variant, repeat)], repeat))
        assert origin["repeat"] == best and origin["seed"] == 3 + best and origin["metric"] == "loss"
        for name in ("model.keras", "config.yaml", "data.json", "metrics.json", "history.csv", ".bilstm-run"):
            assert (kept / name).exists(), name
        assert f"seed: {3 + best}" in (kept / "config.yaml").read_text()
        assert json.loads((kept / "metrics.json").read_text())["variant"] == variant
        assert not list(kept.glob("repeat-*"))
    # the kept model is that run's model: training its config again predicts the same
    variant_dir = out / "models" / "generated" / "bilstm-sum"
    seed = json.loads((variant_dir / "compare.json").read_text())["seed"]
    alone = tmp_path / "alone"
    retrained = cli("train", "--config", variant_dir / "config.yaml", "--seed", seed, "--out", alone, "--quiet")
    assert retrained.exit_code == 0, retrained.stderr
    data = cli("generate", "--samples", "3", "--seed", "5").stdout
    kept_p = probabilities(cli("predict", variant_dir, "-", input=data).stdout)
    alone_p = probabilities(cli("predict", alone, "-", input=data).stdout)
    assert kept_p.shape == (30,) and np.allclose(kept_p, alone_p, atol=1e-5)
    report = json.loads(cli("evaluate", variant_dir, "--samples", "20", "--seed", "1", "--json").stdout)
    assert 0 <= report["accuracy"] <= 1


def test_save_models_all_keeps_every_run_and_runs_lists_them(cli, tiny, tmp_path):
    out = tmp_path / "cmp"
    result = cli(*compare_flags(tiny, out, "--set", "compare.save_models=all"))
    assert result.exit_code == 0, result.stderr
    kept = sorted(path.relative_to(out / "models").as_posix() for path in (out / "models").glob("*/*/repeat-*"))
    assert kept == [f"generated/{v}/repeat-00{r}" for v in ("bilstm-concat", "bilstm-sum") for r in (0, 1)]
    listed = cli("runs", out / "models" / "generated" / "bilstm-sum" / "repeat-001", "--json")
    row = json.loads(listed.stdout)
    assert row["kind"] == "train" and row["model"] == "bilstm-sum" and row["finished"]
    predicted = cli(
        "predict",
        out / "models/generated/bilstm-concat/repeat-000",
        "-",
        input=cli("generate", "--samples", "2", "--seed", "1").stdout,
    )
    assert predicted.exit_code == 0 and predicted.stdout.startswith("sequence,step,class,probability")


def test_save_models_is_checked_and_off_by_default(cli, tiny, tmp_path):
    assert_clean_error(cli("config", "show", "--set", "compare.save_models=some"), 2, "compare.save_models")
    out = tmp_path / "plain"
    assert cli(*compare_flags(tiny, out)).exit_code == 0
    assert not (out / "models").exists()
