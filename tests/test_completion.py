"""Shell completion: file and folder arguments, --device, --backend and comma lists complete;
the scripts users eval come out of ``_BILSTM_COMPLETE=<shell>_source bilstm``."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from click.shell_completion import ShellComplete

from bilstm_cli.cli import main
from bilstm_cli.config.vocabulary import MODEL_VARIANTS


def completions(args: list[str], incomplete: str, command: click.Command = main) -> list[tuple[str, str]]:
    """(type, value) of what <Tab> offers after ``bilstm ARGS INCOMPLETE``."""
    completer = ShellComplete(command, {}, "bilstm", "_BILSTM_COMPLETE")
    return [(item.type, item.value) for item in completer.get_completions(args, incomplete)]


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (["train", "--data"], "file"),
        (["train", "--val-data"], "file"),
        (["train", "--config"], "file"),
        (["train", "--out"], "dir"),
        (["train", "--resume"], "dir"),
        (["evaluate"], "file"),  # a run directory or a .keras file: the shell lists both
        (["evaluate", "runs/x", "--data"], "file"),
        (["predict"], "file"),
        (["predict", "runs/x"], "file"),
        (["generate", "-o"], "file"),
        (["config", "validate"], "file"),
        (["export"], "file"),
        (["export", "runs/x", "-o"], "file"),
        (["compare", "--out"], "dir"),
        (["compare", "--resume"], "dir"),
    ],
)
def test_paths_complete_as_files_or_folders(args, kind):
    assert completions(args, "ru") == [(kind, "ru")]  # the shell then lists matching paths


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "compare"])
def test_device_and_backend_values(command, tmp_path, monkeypatch):
    import bilstm_cli.options as options

    monkeypatch.setattr(options, "NVIDIA_DEVICES", str(tmp_path / "nvidia[0-9]*"))  # a machine without GPUs
    assert [value for _, value in completions([command, "--device"], "")] == ["auto", "cpu"]
    for name in ("nvidia0", "nvidia1", "nvidiactl"):  # two GPUs (and the driver's control file)
        (tmp_path / name).touch()
    assert [value for _, value in completions([command, "--device"], "")] == ["auto", "cpu", "gpu", "gpu:0", "gpu:1"]
    assert completions([command, "--device"], "c") == [("plain", "cpu")]
    assert completions([command, "--backend"], "j") == [("plain", "jax")]


@pytest.mark.parametrize("option", ["--set", "--vary"])
def test_config_keys_and_their_values_complete_from_the_schema(option):
    keys = [value for _, value in completions(["compare", option], "train.ep")]
    assert keys == ["train.epochs="]  # a key, not the section train.early_stopping
    assert "train.early_stopping.patience=" in [v for _, v in completions(["compare", option], "train.early")]
    assert [v for _, v in completions(["compare", option], "model.cell=g")] == ["model.cell=gru"]
    assert [v for _, v in completions(["train", "--set"], "data.standardize=")] == [
        "data.standardize=true",
        "data.standardize=false",
    ]
    assert completions(["compare", option], "model.units=") == []  # a number: nothing to offer


def test_vary_continues_a_list_of_values():
    assert [v for _, v in completions(["compare", "--vary"], "model.cell=lstm,g")] == ["model.cell=lstm,gru"]


def test_compare_data_completes_as_files():
    assert completions(["compare", "--data"], "ru") == [("file", "ru")]


def test_export_format_values():
    assert [value for _, value in completions(["export", "runs/x", "--format"], "")] == ["savedmodel", "onnx"]


def test_comma_list_completes_the_last_part_and_keeps_the_rest():
    assert [v for _, v in completions(["compare", "--variants"], "")] == list(MODEL_VARIANTS)
    assert [v for _, v in completions(["compare", "--variants"], "bilstm-")] == [
        "bilstm-concat",
        "bilstm-sum",
        "bilstm-mul",
        "bilstm-ave",
    ]
    assert [v for _, v in completions(["compare", "--variants"], "lstm-forward,bilstm-s")] == [
        "lstm-forward,bilstm-sum"
    ]
    after_comma = [v for _, v in completions(["compare", "--variants"], "lstm-forward,")]
    assert "lstm-forward,bilstm-ave" in after_comma and "lstm-forward,lstm-forward" not in after_comma
    assert [v for _, v in completions(["compare", "--modes"], "sum,m")] == ["sum,mul"]
    assert completions(["compare", "--variants"], "gru") == []


def bilstm(env: dict[str, str], *args: str) -> str:
    """``python -m bilstm_cli`` with a completion request in the environment."""
    environment = {**os.environ, **env}
    result = subprocess.run([sys.executable, "-m", "bilstm_cli", *args], env=environment, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "complete -o nosort -F _bilstm_completion bilstm"), ("zsh", "#compdef bilstm"), ("fish", "complete")],
)
def test_completion_scripts(shell, marker):
    script = bilstm({"_BILSTM_COMPLETE": f"{shell}_source"})
    assert marker in script and "_BILSTM_COMPLETE" in script


def test_a_bash_completion_request():
    reply = bilstm({"_BILSTM_COMPLETE": "bash_complete", "COMP_WORDS": "bilstm train --device c", "COMP_CWORD": "3"})
    assert reply.splitlines()[0] == "plain,cpu"


def test_python_m_shows_the_program_name():
    assert bilstm({}, "--help").startswith("Usage: bilstm [OPTIONS] COMMAND")
