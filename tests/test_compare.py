"""`bilstm compare`: pairing, statistics consistent with the curves, files, plot, errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from .conftest import assert_clean_error, tiny_flags

TINY = tiny_flags(epochs=20, log_every=5, samples_per_epoch=4, batch_size=4, validation_size=64, units=6, seed=10)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    from click.testing import CliRunner

    from bilstm_cli.cli import main

    out = tmp_path_factory.mktemp("compare") / "out"
    result = CliRunner().invoke(
        main,
        [
            "compare",
            "--variants",
            "lstm-forward",
            "--modes",
            "sum",
            "--repeats",
            "6",
            *TINY,
            "--out",
            str(out),
            "--json",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    return out, json.loads(result.stdout), result


def test_output_files(comparison):
    out, _, _ = comparison
    assert {p.name for p in out.iterdir()} >= {
        "curves.csv",
        "summary.csv",
        "summary.json",
        "compare.png",
        "config.yaml",
        "results",
    }
    curves = pd.read_csv(out / "curves.csv")
    columns = ["dataset", "variant", "repeat", "epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert list(curves.columns) == columns
    assert set(curves["dataset"]) == {"generated"}
    assert len(curves) == 2 * 6 * 20
    assert curves.groupby(["variant", "repeat"]).size().eq(20).all()
    assert curves["val_loss"].notna().sum() == 2 * 6 * 4  # logged every 5 of 20 epochs
    png = (out / "compare.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and 20_000 < len(png) < 2_000_000
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width >= 800 and height >= 400


def test_summary_agrees_with_the_curves(comparison):
    out, summary, _ = comparison
    curves = pd.read_csv(out / "curves.csv")
    final = curves[curves.epoch == 20].pivot(index="repeat", columns="variant", values="val_loss")
    (dataset,) = summary["datasets"]
    assert dataset["split"] == "validation" and summary["across_datasets"] is None
    rows = {row["variant"]: row for row in dataset["variants"]}
    for variant in ("lstm-forward", "bilstm-sum"):
        values = final[variant].to_numpy()
        assert rows[variant]["loss"] == pytest.approx(values.mean(), rel=1e-5)
        half = scipy_stats.t.ppf(0.975, 5) * values.std(ddof=1) / np.sqrt(6)
        assert rows[variant]["loss_ci"] == pytest.approx([values.mean() - half, values.mean() + half], rel=1e-4)
    best = summary["best"]
    other = next(v for v in rows if v != best)
    assert rows[best]["rank"] == 1 and rows[best]["loss"] <= rows[other]["loss"]
    expected_p = scipy_stats.wilcoxon(final[other], final[best]).pvalue  # one comparison: Holm changes nothing
    assert rows[other]["p_value"] == pytest.approx(expected_p, rel=1e-3)
    assert rows[other]["p_holm"] == pytest.approx(expected_p, rel=1e-3)
    assert dataset["underpowered"] is False and summary["verdict"].startswith(best)


def test_repeats_are_paired_across_variants(comparison):
    out, _, _ = comparison
    records = [json.loads(p.read_text()) for p in sorted((out / "results").rglob("*.json"))]
    by_repeat = {}
    for record in records:
        by_repeat.setdefault(record["repeat"], set()).add((record["seed"], record["data_fingerprint"]))
    assert all(len(pairs) == 1 for pairs in by_repeat.values()), "variants of a repeat must share seed and data"
    assert len({next(iter(p)) for p in by_repeat.values()}) == 6, "repeats must differ"
    assert sorted(seed for seed, _ in (next(iter(p)) for p in by_repeat.values())) == list(range(10, 16))


def test_table_for_people(cli, tmp_path):
    result = cli("compare", "--modes", "sum,ave", "--repeats", "2", *TINY, "--out", tmp_path / "c")
    assert result.exit_code == 0, result.stderr
    assert "underpowered" in result.stdout and "verdict:" in result.stdout
    # each variant's row shows its rank and the numbers summary.json holds
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())["datasets"][0]
    for variant in summary["variants"]:
        half = (variant["loss_ci"][1] - variant["loss_ci"][0]) / 2
        name, loss = variant["variant"], f"{variant['loss']:.4f} ± {half:.4f}"
        row = rf"│ {variant['rank']} +│ {name} +│ {loss} │ +{variant['accuracy']:.4f} "
        assert re.search(row, result.stdout), (row, result.stdout)
    assert "bilstm-ave repeat 1" in result.stderr  # one progress line per finished run
    assert "= 4 runs in 1 program(s)" in result.stderr  # the plan comes first


def test_single_repeat_has_no_interval_and_says_so(cli, tmp_path):
    result = cli("compare", "--modes", "sum,concat", "--repeats", "1", *TINY, "--out", tmp_path / "c", "--json")
    summary = json.loads(result.stdout)
    rows = summary["datasets"][0]["variants"]
    assert all(row["loss_ci"] == [None, None] for row in rows)
    assert all(row["p_value"] is None for row in rows)
    assert "single run" in summary["verdict"] and "no confidence interval" in summary["verdict"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--variants", "lstm-sideways"], ["unknown variant 'lstm-sideways'", "lstm-forward", "bilstm-concat"]),
        (["--modes", "max"], ["unknown merge mode 'max'", "sum, mul, ave"]),
        (["--variants", "bilstm-sum", "--modes", "sum"], ["listed twice"]),
        (["--repeats", "0"], ["compare.repeats=0"]),
    ],
)
def test_bad_variants_and_sizes(cli, tmp_path, args, needles):
    result = cli("compare", *args, "--out", tmp_path / "c")
    assert_clean_error(result, 2, *needles)
    assert not (tmp_path / "c").exists()


def test_workers_give_the_same_numbers_as_one_process(cli, tmp_path):
    """Issue 24: programs are fixed by the plan, so two processes compute bit for bit what one does."""
    common = ["compare", "--modes", "sum,concat", "--repeats", "2", *TINY, "--json"]
    common += ["--set", "compare.runs_per_program=2"]  # two programs: one per worker
    one = cli(*common, "--workers", "1", "--out", tmp_path / "one")
    two = cli(*common, "--workers", "2", "--out", tmp_path / "two")
    assert "in 2 program(s)" in one.stderr and "2 worker(s)" in two.stderr
    for name in ("sum", "concat"):
        for repeat in range(2):
            path = Path("results") / "generated" / f"bilstm-{name}__repeat-{repeat:03d}.json"
            first, second = (json.loads((tmp_path / d / path).read_text()) for d in ("one", "two"))
            first["history"].pop("elapsed"), second["history"].pop("elapsed")  # wall-clock times
            assert first["history"] == second["history"] and first["final"] == second["final"]
    rows = [json.loads(result.stdout)["datasets"][0]["variants"] for result in (one, two)]
    for row in (*rows[0], *rows[1]):
        row.pop("seconds_per_run")  # wall-clock time
    assert rows[0] == rows[1]
    if hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2:
        # each worker kept to its own cores (XLA sizes its thread pools by them)
        workers = {}
        for path in (tmp_path / "two" / "results" / "generated").glob("*.json"):
            worker = json.loads(path.read_text())["worker"]
            workers[worker["pid"]] = set(worker["cores"])
        assert len(workers) == 2
        first, second = workers.values()
        assert first and second and not first & second


def test_a_driver_with_worker_processes_never_loads_keras(tmp_path):
    """Issue 24 (memory): with worker processes the driver only plans, writes and summarises;
    loading Keras and the backend there too cost ~0.3-1 GB and delayed the workers' start."""
    script = (
        "import sys\n"
        "from bilstm_cli.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:], standalone_mode=False)\n"
        "finally:\n"
        "    print('LOADED', sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))\n"
    )
    args = ["compare", "--modes", "sum,concat", "--repeats", "2", *TINY, "--set", "compare.runs_per_program=2"]
    args += ["--workers", "2", "--out", str(tmp_path / "out")]
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "2 worker(s)" in done.stderr
    assert "LOADED []" in done.stdout
    assert len(list((tmp_path / "out" / "results" / "generated").glob("*.json"))) == 4


def test_one_tensorboard_run_per_repeat_matches_the_curves(comparison):
    from .tensorboard_events import read_run

    out, _, _ = comparison
    runs = sorted(p.parent for p in (out / "tensorboard").rglob("events.out.tfevents.*"))
    assert [p.relative_to(out / "tensorboard").as_posix() for p in runs] == [
        f"generated/{variant}/repeat-{r:03d}" for variant in ("bilstm-sum", "lstm-forward") for r in range(6)
    ]
    curves = pd.read_csv(out / "curves.csv")
    scalars, texts = read_run(out / "tensorboard" / "generated" / "bilstm-sum" / "repeat-004")
    expected = curves[(curves.variant == "bilstm-sum") & (curves.repeat == 4)]
    assert sorted(scalars["loss"]) == expected["epoch"].tolist()
    np.testing.assert_allclose([scalars["loss"][e] for e in expected["epoch"]], expected["loss"], rtol=1e-5)
    logged = expected.dropna(subset=["val_loss"])
    np.testing.assert_allclose([scalars["val_loss"][e] for e in logged["epoch"]], logged["val_loss"], rtol=1e-5)
    assert any("merge: sum" in text for text in texts.values())  # the run's own config


def hparams_of(run: Path) -> tuple[dict, bool]:
    """The HParams session a TensorBoard run declares: its hyperparameters, and whether it ended."""
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    from .tensorboard_events import read_events

    hparams, ended = {}, False
    for path in run.glob("events.out.tfevents.*"):
        for event in read_events(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    for name, hparam in data.session_start_info.hparams.items():
                        hparams[name] = getattr(hparam, hparam.WhichOneof("kind"))
                    ended = ended or data.HasField("session_end_info")
    return hparams, ended


def test_each_run_declares_its_settings_for_tensorboards_hparams_tab(comparison):
    out, _, _ = comparison
    records = {
        (r["variant"], r["repeat"]): r for r in map(json.loads, map(Path.read_text, (out / "results").rglob("*.json")))
    }
    for variant, merge, direction in (("bilstm-sum", "sum", "none"), ("lstm-forward", "none", "forward")):
        hparams, ended = hparams_of(out / "tensorboard" / "generated" / variant / "repeat-002")
        assert ended
        assert hparams["variant"] == variant and hparams["dataset"] == "generated"
        assert hparams["repeat"] == 2 and hparams["seed"] == records[(variant, 2)]["seed"]
        assert (hparams["model.merge"], hparams["model.direction"]) == (merge, direction)
        assert hparams["model.units"] == 6 and hparams["train.epochs"] == records[(variant, 2)]["epochs_run"]


def synthetic_record(loss: float, accuracy: float) -> dict:
    """A finished run's record as compare writes it, reduced to what the summary reads."""
    history = {"epoch": [1, 2], "val_loss": [loss + 0.1, loss], "val_accuracy": [accuracy - 0.1, accuracy]}
    return {"final": {"split": "validation", "loss": loss, "accuracy": accuracy}, "history": history,
            "epochs_run": 2, "seconds": 1.0}  # fmt: skip


@pytest.mark.parametrize("metric, best", [("loss", "low-loss"), ("accuracy", "accurate")])
def test_the_metric_decides_the_ranking_and_the_test(metric, best):
    """Where loss and accuracy disagree, --metric picks which one ranks the variants and is tested."""
    from bilstm_cli.compare.summary import summarize_dataset
    from bilstm_cli.config.resolve import resolve_config

    rng = np.random.default_rng(0)
    results = {  # 8 paired repeats: one variant has the lower loss, the other the higher accuracy
        "low-loss": [synthetic_record(0.20 + rng.normal(0, 0.01), 0.80 + rng.normal(0, 0.01)) for _ in range(8)],
        "accurate": [synthetic_record(0.30 + rng.normal(0, 0.01), 0.90 + rng.normal(0, 0.01)) for _ in range(8)],
    }
    config = resolve_config(assignments=[f"compare.metric={metric}", "compare.repeats=8"])
    summary = summarize_dataset("d", results, config)
    assert summary["best"] == best and [row["rank"] for row in summary["variants"]] == [1, 2]
    assert summary["metric"].startswith(f"final validation {metric}")
    other = summary["variants"][1]
    scores = {name: [r["final"][metric] for r in records] for name, records in results.items()}
    expected = scipy_stats.wilcoxon(scores[other["variant"]], scores[best]).pvalue
    assert other["p_value"] == pytest.approx(expected) and other["p_value"] < 0.05
    assert best in summary["verdict"]
