"""`bilstm compare` over hyperparameter grids and several datasets (issue 13)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from bilstm_cli.compare.plan import check_file_names, slug
from bilstm_cli.config.schema import DatasetSpec
from bilstm_cli.data.generator import cumulative_sum_task
from bilstm_cli.data.io import write_dataset

from .conftest import assert_clean_error, tiny_flags

TINY = tiny_flags(epochs=12, log_every=4, samples_per_epoch=4, batch_size=4, validation_size=32, units=4, seed=3)


def without_timings(datasets: list[dict]) -> list[dict]:
    return [
        {**d, "variants": [{k: v for k, v in r.items() if k != "seconds_per_run"} for r in d["variants"]]}
        for d in datasets
    ]


def run(cli, *args):
    result = cli("compare", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def test_vary_crosses_every_value_with_the_variants_and_saves_each_config(cli, tmp_path):
    summary, stderr = run(
        cli, "--modes", "sum,ave", "--vary", "model.units=3,5", "--vary", "train.learning_rate=0.01,0.003",
        "--repeats", "2", *TINY, "--out", tmp_path / "c",
    )  # fmt: skip
    names = {row["variant"] for row in summary["datasets"][0]["variants"]}
    assert names == {
        f"bilstm-{mode} units={units} lr={lr}" for mode in ("sum", "ave") for units in (3, 5) for lr in (0.01, 0.003)
    }
    # merge modes and learning rates are copies of one program: one program per size
    assert "= 16 runs in 2 program(s)" in stderr
    saved = yaml.safe_load((tmp_path / "c" / "configs" / "generated" / "bilstm-ave_units=5_lr=0.003.yaml").read_text())
    assert saved["model"]["merge"] == "ave" and saved["model"]["units"] == 5
    assert saved["train"]["learning_rate"] == 0.003


def test_a_shared_compile_gives_the_same_numbers_as_separate_runs(cli, tmp_path):
    """Switching the learning rate inside one engine must equal training with it from the start."""
    grid, _ = run(cli, "--modes", "sum", "--vary", "train.learning_rate=0.003,0.03", "--repeats", "2", *TINY,
                  "--out", tmp_path / "grid")  # fmt: skip
    alone, _ = run(cli, "--modes", "sum", "--set", "train.learning_rate=0.03", "--repeats", "2", *TINY,
                   "--out", tmp_path / "alone")  # fmt: skip
    shared = next(r for r in grid["datasets"][0]["variants"] if r["variant"].endswith("lr=0.03"))
    (single,) = alone["datasets"][0]["variants"]
    assert shared["loss"] == pytest.approx(single["loss"], abs=1e-6)
    assert shared["accuracy"] == pytest.approx(single["accuracy"], abs=1e-6)


def test_named_variants_and_grid_in_yaml_are_validated_before_anything_trains(cli, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "compare:\n"
        "  variants:\n"
        "    small: {model.units: 3}\n"
        "    wide: {model: {units: 5000}}\n"  # beyond the schema's limit
        "  grid: {train.learning_rate: [0.01]}\n"
    )
    result = cli("compare", "--config", config, *TINY, "--out", tmp_path / "c")
    assert_clean_error(result, 2, "variant 'wide lr=0.01'", "model.units=5000")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--vary", "model.units"], ["expected KEY=V1,V2"]),
        (["--vary", "model.unit=3,5"], ["unknown key 'model.unit'", "did you mean model.units"]),
        (["--vary", "model.merge=sum,max"], ["variant 'bilstm-concat merge=max'", "model.merge='max'"]),
        (["--data", "a.csv", "--data", "b/a.csv"], ["two datasets are called 'a'"]),
        # grids that cannot be honoured (issue 19): each refused, not silently trained otherwise
        (["--vary", "model.units=4,8", "--vary", "model.units=16"], ["--vary model.units is given twice"]),
        (["--vary", "train.seed=1,2"], ["train.seed: cannot be varied", "--repeats"]),
        (["--vary", "compare.repeats=2,3"], ["compare.repeats: cannot be varied"]),
        (["--vary", "output.root=a,b"], ["output.root: cannot be varied"]),
        (["--vary", "train.learning_rate=0.001,1e-3"], ["'bilstm-concat lr=0.001' and 'bilstm-concat lr=1e-3'"]),
        (["--modes", "sum", "--vary", "model.merge=mul"], ["variant 'bilstm-sum' sets it", "--modes"]),
        (["--set", "compare.variants={a: {train.seed: 1}, b: {train.seed: 2}}"], ["variant 'a' sets train.seed"]),
    ],
)
def test_bad_grids_and_datasets_are_usage_errors(cli, tmp_path, args, needles):
    result = cli("compare", *args, *TINY, "--out", tmp_path / "c")
    assert_clean_error(result, 2, *needles)
    assert not (tmp_path / "c").exists()


@pytest.fixture(scope="module")
def three_datasets(tmp_path_factory):
    """Two generated tasks of other lengths, and one file with a test file."""
    folder = tmp_path_factory.mktemp("datasets")
    rng = np.random.default_rng(5)
    for name, count in (("short-train", 40), ("short-test", 30)):  # threshold 0.5: both classes common
        write_dataset(cumulative_sum_task(count, 8, 0.5, rng, "sequence"), str(folder / f"{name}.npz"))
    config = folder / "compare.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"task": "sequence", "threshold": 0.5},
                "compare": {
                    "datasets": [
                        {"name": "T6", "settings": {"data.timesteps": 6}},
                        {"name": "T12", "settings": {"data": {"timesteps": 12}}},
                        {
                            "name": "short",
                            "train": str(folder / "short-train.npz"),
                            "test": str(folder / "short-test.npz"),
                            "settings": {"data.validation_split": 0.25},
                        },
                    ],
                    "grid": {"model.units": [2, 6]},
                    "variants": ["lstm-forward", "bilstm-concat"],
                },
            }
        )
    )
    return config


@pytest.fixture(scope="module")
def three_way(tmp_path_factory, three_datasets):
    """One comparison over the three datasets: (output folder, summary, stderr)."""
    from click.testing import CliRunner

    from bilstm_cli.cli import main

    out = tmp_path_factory.mktemp("three-way") / "c"
    args = ["compare", "--config", str(three_datasets), "--repeats", "2", *TINY, "--out", str(out), "--json"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return out, json.loads(result.stdout), result.stderr


def test_several_datasets_rank_the_variants_across_them(three_way):
    out, summary, stderr = three_way
    assert "3 datasets x 4 variants x 2 paired repeats = 24 runs" in stderr
    splits = {d["dataset"]: d["split"] for d in summary["datasets"]}
    assert splits == {"T6": "validation", "T12": "validation", "short": "test"}
    across = summary["across_datasets"]
    assert across["datasets"] == ["T6", "T12", "short"]
    ranks = pd.DataFrame(across["ranks"]).T  # datasets x variants
    assert np.allclose(ranks.sum(axis=1), 1 + 2 + 3 + 4)  # each dataset ranks all four
    assert across["average_ranks"] == pytest.approx(ranks.mean(axis=0).to_dict())
    assert "underpowered" in across["verdict"]  # 3 datasets cannot support a claim
    assert {p.name for p in out.iterdir()} >= {"ranks.csv", "cd.png", "compare-short.png", "summary.csv"}
    table = pd.read_csv(out / "summary.csv")
    assert set(table["dataset"]) == {"T6", "T12", "short"} and len(table) == 12
    assert (table[table.dataset == "short"]["split"] == "test").all()
    records = [json.loads(p.read_text()) for p in (out / "results" / "short").glob("lstm-forward_units=2__*.json")]
    assert len(records) == 2 and all(record["final"]["split"] == "test" for record in records)
    # the summary's score is the mean of its repeats' test scores
    row = table[(table.dataset == "short") & (table.variant == records[0]["variant"])]
    assert row["accuracy"].item() == pytest.approx(np.mean([record["final"]["accuracy"] for record in records]))


def test_the_people_table_states_the_split_and_the_ranks(three_way):
    import io

    from rich.console import Console

    from bilstm_cli.report.comparison import print_compare_summary

    _, summary, _ = three_way
    buffer = io.StringIO()
    print_compare_summary(summary, Console(file=buffer, width=200))
    text = buffer.getvalue()
    assert "scores on the test split" in text and "scores on the validation split" in text
    assert "ranks across 3 datasets" in text and "verdict across datasets:" in text
    assert "Iman-Davenport F(3, 6)" in text  # k - 1 = 3, (k - 1)(N - 1) = 6


def test_resume_with_grids_and_datasets_runs_only_what_is_missing(cli, tmp_path, three_way):
    import shutil

    original, first, _ = three_way
    shutil.copytree(original, tmp_path / "c")
    missing = tmp_path / "c" / "results" / "T12" / "bilstm-concat_units=6__repeat-001.json"
    missing.unlink()
    resumed = cli("compare", "--resume", tmp_path / "c", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert "23 already done" in resumed.stderr and resumed.stderr.count(" repeat ") == 1
    assert without_timings(json.loads(resumed.stdout)["datasets"]) == without_timings(first["datasets"])
    assert missing.exists()


def test_model_flags_that_contradict_each_other_are_refused(cli):
    """`--merge sum --direction forward` used to train lstm-forward without a word."""
    for args in (["--merge", "sum", "--direction", "forward"], ["--kind", "lstm", "--merge", "sum"]):
        assert_clean_error(cli("train", *args, *TINY), 2, "contradict each other")


def test_non_ascii_names_keep_distinct_file_names():
    """Non-ASCII letters all become `_` in file names: a short hash of the name keeps them apart."""
    names = ["数据", "表格", "données", "donnees"]
    slugs = [slug(name) for name in names]
    assert len(set(slugs)) == 4 and all(s and s.isascii() and "/" not in s for s in slugs), slugs
    assert slug("bilstm-sum lr=0.003") == "bilstm-sum_lr=0.003"  # ASCII names keep their file names
    check_file_names([DatasetSpec(name=name, train=f"{name}.csv") for name in names], [])
