"""Training data from stdin: config.yaml records a fingerprint, not '-', and a re-run asks for
the data again and refuses different data."""

from __future__ import annotations

import yaml

from bilstm_cli.runs.checkpoint import load_checkpoint_with_best, save_checkpoint

from .conftest import assert_clean_error
from .tensorboard_events import read_run


def generated(cli, seed: int, fmt: str = "csv") -> bytes:
    result = cli("generate", "--samples", "24", "--timesteps", "6", "--seed", seed, "--format", fmt, "--quiet")
    assert result.exit_code == 0, result.stderr
    return result.stdout_bytes


def saved_data_section(run) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())["data"]


def test_config_records_a_fingerprint_and_a_rerun_asks_for_the_data(cli, tiny, tmp_path):
    data = generated(cli, seed=1)
    first = cli("train", "--data", "-", *tiny(epochs=4, log_every=2), "--out", tmp_path / "a", "--quiet", input=data)
    assert first.exit_code == 0, first.stderr
    section = saved_data_section(tmp_path / "a")
    assert section["train_path"] is None
    assert section["stdin"]["sequences"] == 24 and section["stdin"]["steps"] == 144
    assert len(section["stdin"]["sha256"]) == 64
    _, texts = read_run(tmp_path / "a" / "tensorboard")  # TensorBoard shows the config a re-run can use
    assert texts["config/text_summary"] == "```yaml\n" + (tmp_path / "a" / "config.yaml").read_text() + "```"

    config = tmp_path / "a" / "config.yaml"
    without_data = cli("train", "--config", config, "--out", tmp_path / "b")
    assert_clean_error(without_data, 2, "came from standard input", "24 sequences", "--data FILE", "--data -")
    assert not (tmp_path / "b").exists()

    # the same data again, piped or from a file in another format: accepted
    again = cli("train", "--config", config, "--data", "-", "--out", tmp_path / "c", "--quiet", input=data)
    assert again.exit_code == 0, again.stderr
    assert saved_data_section(tmp_path / "c")["stdin"] == section["stdin"]
    (tmp_path / "same.jsonl").write_bytes(generated(cli, seed=1, fmt="jsonl"))
    from_file = cli("train", "--config", config, "--data", tmp_path / "same.jsonl", "--out", tmp_path / "d", "--quiet")
    assert from_file.exit_code == 0, from_file.stderr
    assert saved_data_section(tmp_path / "d")["train_path"] == str(tmp_path / "same.jsonl")
    assert saved_data_section(tmp_path / "d")["stdin"] is None  # a file is what a re-run of this one reads


def test_different_data_is_refused_unless_the_fingerprint_is_dropped(cli, tiny, tmp_path):
    data = generated(cli, seed=1)
    first = cli("train", "--data", "-", *tiny(epochs=4, log_every=2), "--out", tmp_path / "a", "--quiet", input=data)
    assert first.exit_code == 0, first.stderr
    config = tmp_path / "a" / "config.yaml"
    other = generated(cli, seed=2)
    refused = cli("train", "--config", config, "--data", "-", "--out", tmp_path / "b", input=other)
    assert_clean_error(refused, 2, "<stdin> is not the data this config was trained on", "data.stdin=null")
    assert not (tmp_path / "b").exists()
    allowed = cli(
        "train", "--config", config, "--set", "data.stdin=null", "--data", "-", "--out", tmp_path / "c", "--quiet",
        input=other,
    )  # fmt: skip
    assert allowed.exit_code == 0, allowed.stderr


def test_resuming_a_stdin_run_needs_the_data_again(cli, tiny, tmp_path):
    data = generated(cli, seed=1)
    run = tmp_path / "run"
    first = cli("train", "--data", "-", *tiny(epochs=4, log_every=2), "--out", run, "--quiet", input=data)
    assert first.exit_code == 0, first.stderr
    state, meta, best = load_checkpoint_with_best(run)
    save_checkpoint(run, state, {**meta, "finished": False}, best)  # as if interrupted after the last epoch

    assert_clean_error(cli("train", "--resume", run), 2, "came from standard input", f"--resume {run} --data FILE")
    resumed = cli("train", "--resume", run, "--data", "-", "--quiet", input=data)
    assert resumed.exit_code == 0, resumed.stderr


def test_resume_still_refuses_data_for_a_run_trained_on_a_file(cli, tiny, tmp_path):
    data = tmp_path / "train.csv"
    data.write_bytes(generated(cli, seed=1))
    first = cli("train", "--data", data, *tiny(epochs=4, log_every=2), "--out", tmp_path / "run", "--quiet")
    assert first.exit_code == 0, first.stderr
    refused = cli("train", "--resume", tmp_path / "run", "--data", data)
    assert_clean_error(refused, 2, "--data would change the experiment")
