"""Config precedence and every validation error of issue 2."""

from __future__ import annotations

import pytest
import yaml

from bilstm_cli.config.resolve import resolve_config
from bilstm_cli.config.schema import Config
from bilstm_cli.config.variants import model_variant_name
from bilstm_cli.errors import ConfigError

from .conftest import ROOT, assert_clean_error


def write(tmp_path, text: str, name: str = "config.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_are_a_sensible_bilstm():
    config = resolve_config()
    assert model_variant_name(config.model) == "bilstm-concat"
    assert config.model.units == 20
    assert config.train.learning_rate == 0.003
    assert config.data.samples_per_epoch == config.train.batch_size == 32


def test_precedence_defaults_file_set_flags(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 7\n  learning_rate: 0.01\nmodel:\n  units: 5\n")
    config = resolve_config(path)
    assert (config.train.epochs, config.train.learning_rate, config.model.units) == (7, 0.01, 5)
    config = resolve_config(path, ["train.epochs=9"])
    assert (config.train.epochs, config.train.learning_rate) == (9, 0.01)
    config = resolve_config(path, ["train.epochs=9"], {"train.epochs": 11, "model.units": None})
    assert config.train.epochs == 11
    assert config.model.units == 5  # a flag left unset does not override


def test_later_set_wins_and_values_are_yaml_scalars():
    config = resolve_config(
        assignments=["train.epochs=5", "train.epochs=6", "data.standardize=yes", "train.class_weight={0: 1.0, 1: 3.0}"]
    )
    assert config.train.epochs == 6
    assert config.data.standardize is True
    assert config.train.class_weight == {"0": 1.0, "1": 3.0}


def test_merge_flag_switches_kind_and_direction_flag_back(cli):
    result = cli("config", "show", "--direction", "backward")
    shown = yaml.safe_load(result.stdout)
    assert shown["model"]["kind"] == "lstm" and shown["model"]["direction"] == "backward"
    assert shown["model"]["merge"] is None
    result = cli("config", "show", "--merge", "ave", "--units", "8")
    shown = yaml.safe_load(result.stdout)
    assert (shown["model"]["kind"], shown["model"]["merge"], shown["model"]["units"]) == ("bilstm", "ave", 8)


def test_config_show_output_is_valid_config_input(cli, tmp_path):
    result = cli("config", "show", "--set", "train.epochs=42", "--merge", "mul")
    assert result.exit_code == 0
    path = write(tmp_path, result.stdout, "shown.yaml")
    again = resolve_config(path)
    assert again.train.epochs == 42 and again.model.merge == "mul"
    assert again == Config.model_validate(yaml.safe_load(result.stdout))


@pytest.mark.parametrize("name", ["tutorial-lstm", "tutorial-bilstm", "tutorial-directions", "tutorial-merge-modes"])
def test_shipped_configs_validate(cli, name):
    result = cli("config", "validate", ROOT / "configs" / f"{name}.yaml")
    assert result.exit_code == 0, result.stderr


def test_unknown_key_names_path_line_and_closest_key(cli, tmp_path):
    path = write(tmp_path, "train:\n  epochs: 3\n  learnig_rate: 0.1\n")
    result = cli("config", "validate", path)
    assert_clean_error(result, 2, "train.learnig_rate", "line 3", "did you mean train.learning_rate")


def test_unknown_key_in_set_option(cli):
    result = cli("config", "show", "--set", "model.unit=3")
    assert_clean_error(result, 2, "--set model.unit=3", "did you mean model.units")


def test_unknown_section(cli):
    result = cli("config", "show", "--set", "trian.epochs=3")
    assert_clean_error(result, 2, "trian", "did you mean train?")


@pytest.mark.parametrize(
    ("assignment", "needles"),
    [
        ("train.epochs=-3", ["train.epochs=-3", "greater than or equal to 1"]),
        ("train.epochs=many", ["train.epochs='many'", "integer"]),
        ("model.dropout=1.5", ["model.dropout=1.5", "less than 1"]),
        ("train.learning_rate=0", ["train.learning_rate=0", "greater than 0"]),
        ("data.threshold=nan", ["data.threshold", "finite"]),
        ("train.device=tpu", ["train.device='tpu'", "auto, cpu, gpu or gpu:N"]),
        ("train.optimizer=adamx", ["train.optimizer='adamx'", "'adamw'"]),
        ("model.cell=lstn", ["model.cell='lstn'", "'gru'"]),
        ("train.schedule=linear", ["train.schedule='linear'", "'cosine'"]),
        ("train.clipnorm=0", ["train.clipnorm=0", "greater than 0"]),
        ("train.weight_decay=0.1", ["train.weight_decay", "train.optimizer=adamw"]),
        ("data.timesteps=1000000000", ["data.timesteps=1000000000", "less than or equal to 1000000"]),
        ("train=5", ["'train' must be a mapping"]),
    ],
)
def test_bad_values_name_key_value_and_allowed(cli, assignment, needles):
    result = cli("config", "show", "--set", assignment)
    assert_clean_error(result, 2, *needles)


def test_merge_with_lstm_is_rejected_with_reason(cli, tmp_path):
    path = write(tmp_path, "model:\n  kind: lstm\n  merge: sum\n")
    result = cli("config", "validate", path)
    assert_clean_error(result, 2, "model.merge=sum only applies to kind bilstm", "line 3")


def test_direction_with_bilstm_is_rejected_with_reason(cli):
    result = cli("config", "show", "--set", "model.direction=backward")
    assert_clean_error(result, 2, "model.direction=backward only applies to kind lstm")


def test_malformed_yaml_gives_file_line_column(cli, tmp_path):
    path = write(tmp_path, "train:\n  epochs: [1, 2\n  seed: 3\n")
    result = cli("config", "validate", path)
    assert_clean_error(result, 2, str(path), "line", "column", "malformed YAML")


@pytest.mark.parametrize(
    ("text", "needle"),
    [("", "empty"), ("- 1\n- 2\n", "must be a mapping of sections"), ("just text\n", "not a str")],
)
def test_not_a_mapping_or_empty(cli, tmp_path, text, needle):
    result = cli("config", "validate", write(tmp_path, text))
    assert_clean_error(result, 2, needle)


def test_missing_config_file(cli, tmp_path):
    result = cli("config", "show", "--config", tmp_path / "nope.yaml")
    assert_clean_error(result, 2, "not found", "nope.yaml")


def test_directory_as_config_file(cli, tmp_path):
    result = cli("config", "validate", tmp_path)
    assert_clean_error(result, 2, "directory")


def test_non_utf8_config(cli, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("train:\n  epochs: 3 # caf\xe9\n".encode("latin-1"))
    result = cli("config", "validate", path)
    assert_clean_error(result, 2, "UTF-8")


def test_set_without_equals(cli):
    result = cli("config", "show", "--set", "train.epochs")
    assert_clean_error(result, 2, "expected section.key=value")


def test_config_error_is_a_usage_error():
    with pytest.raises(ConfigError) as info:
        resolve_config(assignments=["model.units=0"])
    assert info.value.exit_code == 2


def test_duplicate_key_is_an_error(cli, tmp_path):
    path = write(tmp_path, "train:\n  epochs: 5\n  epochs: 7\n")
    assert_clean_error(cli("config", "validate", path), 2, "'train.epochs' is given twice", "line 3", "line 2")


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path):
    resolve_config(path)


def test_the_across_tasks_config_plans_eight_tasks_of_three_modes():
    """configs/merge-modes-across-tasks.yaml: lengths 5..40 x label limits 1/4 and 1/2, each
    dataset's run configs carrying its own task settings (what the README's multi-dataset example runs)."""
    from bilstm_cli.compare.plan import comparison_datasets, plan_jobs, run_config
    from bilstm_cli.config.variants import parse_variants

    config = resolve_config(ROOT / "configs" / "merge-modes-across-tasks.yaml")
    datasets = comparison_datasets(config)
    variants = parse_variants(config.compare.variants, None, [])
    assert [v.name for v in variants] == ["bilstm-sum", "bilstm-concat", "bilstm-mul"]
    configs = {(d.name, v.name): run_config(config, d, v) for d in datasets for v in variants}
    tasks = {name: (c.data.timesteps, c.data.threshold) for (name, _), c in configs.items()}
    assert tasks == {
        f"T{t}-{half}": (t, limit) for t in (5, 10, 20, 40) for half, limit in (("quarter", 0.25), ("half", 0.5))
    }
    assert {c.model.merge for (name, _), c in configs.items() if name == "T5-half"} == {"sum", "concat", "mul"}
    jobs = plan_jobs(configs, datasets, variants, config.compare.repeats, config.compare.runs_per_program)
    # one program per task (different lengths cannot share one), holding all 3 modes x 5 repeats
    assert len(jobs) == 8 and all(sum(len(part.repeats) for part in job.parts) == 15 for job in jobs)
