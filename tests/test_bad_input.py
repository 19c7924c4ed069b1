"""Issue 7's bad-input matrix: every case exits with the documented code, says what is wrong in
one or two lines without a traceback, and leaves no partial output behind."""

from __future__ import annotations

import io

import numpy as np
import pytest
from click.testing import CliRunner

from bilstm_cli.cli import main

from .conftest import assert_clean_error, tiny_flags

TINY = tiny_flags(epochs=4, samples_per_epoch=4, batch_size=4, validation_size=8, units=4, log_every=2)


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


FILES = {
    "empty.csv": b"",
    "header-only.csv": b"sequence,step,x,y\n",
    "bad-row.csv": b"sequence,step,x,y\n0,0,0.1,0\n0,1,0.2\n0,2,0.3,1,9\n",
    "text-x.csv": b"sequence,step,x,y\n0,0,0.1,0\n0,1,hello,1\n",
    "nan.csv": b"sequence,step,x,y\n0,0,0.1,0\n0,1,nan,1\n",
    "inf.jsonl": b'{"x": [0.1, 1e999], "y": [0, 1]}\n',
    "negative-label.csv": b"sequence,step,x,y\n0,0,0.1,0\n0,1,0.2,-1\n",
    "duplicate-step.csv": b"sequence,step,x,y\n0,0,0.1,0\n0,0,0.2,1\n",
    "no-y.csv": b"sequence,step,x\n0,0,0.1\n",
    "broken.jsonl": b'{"x": [0.1, 0.2], "y": [0, 1]}\n{"x": [0.1\n',
    "short-y.jsonl": b'{"x": [0.1, 0.2, 0.3], "y": [0, 1]}\n',
    "broken.npz": b"PK\x03\x04 this is not a zip archive",
    "random.npz": bytes(range(256)) * 4,  # numpy would try it as a pickle and suggest allow_pickle
    "text-x.npz": npz_bytes(X=np.array([["a", "b"]]), y=np.zeros((1, 2), int)),
    "mismatch.npz": npz_bytes(X=np.zeros((3, 5, 1), np.float32), y=np.zeros((4, 5), int)),
    "latin1.csv": "sequence,step,x,y\n0,0,0.1,caf\xe9\n".encode("latin-1"),
    "two-features.jsonl": b'{"x": [[0.1, 0.2], [0.3, 0.4]], "y": [0, 1]}\n',
    "per-sequence.jsonl": b'{"x": [0.1, 0.2], "y": 1}\n',
    "bad-header.ts": b"@problemName x\n@univariate maybe\n@data\n1,2,3:a\n",
    "inconsistent.ts": b"@problemName x\n@classLabel true a b\n@data\n1,2,3:4,5:a\n",
    "bad.yaml": b"train:\n  epochs: [1, 2\n",
    "unknown-key.yaml": b"train:\n  epoch: 3\n",
    "latin1.yaml": "train:\n  epochs: 3 # caf\xe9\n".encode("latin-1"),
    "list.yaml": b"- 1\n- 2\n",
    "empty.yaml": b"",
    "fake.keras": b"not a zip, not a model",
    "blocker": b"a file where a folder should be",
    "one-class.jsonl": b'{"x": [0.1, 0.2], "y": ["pos", "pos"]}\n{"x": [0.3], "y": ["pos"]}\n',
    "huge-label.csv": b"sequence,step,x,y\n0,0,0.1,0\n0,1,0.2,1e20\n",
    "gap.tsv": b"1\t0.5\t0.6\t0.7\n2\t0.5\tNaN\t0.7\n",
    "undeclared.arff": b"@relation r\n@attribute a0 numeric\n@attribute c {x,y}\n@data\n0.1,x\n0.2,z\n",
    "broken.parquet": b"PAR1 cut short",
}

# (id, args, expected exit code, words the message must contain, output that must not appear)
CASES = [
    ("missing data file", ["train", "--data", "{d}/nope.csv", *TINY, "--out", "{o}"], 2, ["not found"], "{o}"),
    ("empty file", ["train", "--data", "{d}/empty.csv", *TINY, "--out", "{o}"], 1, ["empty"], "{o}"),
    ("header only", ["train", "--data", "{d}/header-only.csv", *TINY, "--out", "{o}"], 1, ["no rows"], "{o}"),
    ("directory as data", ["train", "--data", "{d}", *TINY, "--out", "{o}"], 2, ["directory"], "{o}"),
    ("malformed csv", ["train", "--data", "{d}/bad-row.csv", *TINY, "--out", "{o}"], 1, ["malformed CSV"], "{o}"),
    ("non-numeric csv", ["train", "--data", "{d}/text-x.csv", *TINY, "--out", "{o}"], 1, ["line 3", "hello"], "{o}"),
    (
        "nan in csv",
        ["train", "--data", "{d}/nan.csv", *TINY, "--out", "{o}"],
        1,
        ["line 3", "holds NaN at row 2"],
        "{o}",
    ),
    ("inf in jsonl", ["train", "--data", "{d}/inf.jsonl", *TINY, "--out", "{o}"], 1, ["line 1", "finite"], "{o}"),
    (
        "negative label",
        ["train", "--data", "{d}/negative-label.csv", *TINY, "--out", "{o}"],
        1,
        ["not a class number (an integer from 0"],
        "{o}",
    ),
    ("duplicated step", ["train", "--data", "{d}/duplicate-step.csv", *TINY, "--out", "{o}"], 1, ["duplicated"], "{o}"),
    ("no labels", ["train", "--data", "{d}/no-y.csv", *TINY, "--out", "{o}"], 1, ["no labels"], "{o}"),
    (
        "malformed jsonl",
        ["train", "--data", "{d}/broken.jsonl", *TINY, "--out", "{o}"],
        1,
        ["line 2", "malformed JSON"],
        "{o}",
    ),
    (
        "x/y length mismatch jsonl",
        ["train", "--data", "{d}/short-y.jsonl", *TINY, "--out", "{o}"],
        1,
        ["2 labels", "3 steps"],
        "{o}",
    ),
    ("malformed npz", ["train", "--data", "{d}/broken.npz", *TINY, "--out", "{o}"], 1, ["not a valid NPZ file"], "{o}"),
    ("random-bytes npz", ["train", "--data", "{d}/random.npz", *TINY, "--out", "{o}"], 1, ["not a valid NPZ"], "{o}"),
    ("wrong dtype npz", ["train", "--data", "{d}/text-x.npz", *TINY, "--out", "{o}"], 1, ["must be numeric"], "{o}"),
    (
        "mismatched X/y npz",
        ["train", "--data", "{d}/mismatch.npz", *TINY, "--out", "{o}"],
        1,
        ["y has shape (4, 5)", "3 sequences"],
        "{o}",
    ),
    ("non-UTF-8 csv", ["train", "--data", "{d}/latin1.csv", *TINY, "--out", "{o}"], 1, ["UTF-8"], "{o}"),
    (
        "per-sequence labels for per-step model",
        ["train", "--data", "{d}/per-sequence.jsonl", "--set", "data.task=per-step", *TINY, "--out", "{o}"],
        1,
        ["one per sequence", "data.task"],
        "{o}",
    ),
    (
        "malformed ts header",
        ["train", "--data", "{d}/bad-header.ts", *TINY, "--out", "{o}"],
        1,
        ["@univariate must be true or false"],
        "{o}",
    ),
    (
        "inconsistent ts dimensions",
        ["train", "--data", "{d}/inconsistent.ts", "--set", "data.task=sequence", *TINY, "--out", "{o}"],
        1,
        ["dimensions have different lengths"],
        "{o}",
    ),
    (
        "nan inside a ucr series",
        ["train", "--data", "{d}/gap.tsv", *TINY, "--out", "{o}"],
        1,
        ["line 2", "step 1", "missing value"],
        "{o}",
    ),
    (
        "undeclared arff label",
        ["train", "--data", "{d}/undeclared.arff", *TINY, "--out", "{o}"],
        1,
        ["line 6", "'z' is not declared"],
        "{o}",
    ),
    ("broken parquet", ["train", "--data", "{d}/broken.parquet", *TINY, "--out", "{o}"], 1, ["not a Parquet"], "{o}"),
    (
        "a single class",
        ["train", "--data", "{d}/one-class.jsonl", *TINY, "--out", "{o}"],
        1,
        ["every label is 'pos'", "at least two classes"],
        "{o}",
    ),
    (
        "huge label",
        ["train", "--data", "{d}/huge-label.csv", *TINY, "--out", "{o}"],
        1,
        ["line 3", "not a class number"],
        "{o}",
    ),
    ("malformed yaml", ["train", "--config", "{d}/bad.yaml", "--out", "{o}"], 2, ["line", "column"], "{o}"),
    (
        "unknown config key",
        ["train", "--config", "{d}/unknown-key.yaml", "--out", "{o}"],
        2,
        ["train.epoch", "did you mean train.epochs"],
        "{o}",
    ),
    ("non-UTF-8 yaml", ["config", "validate", "{d}/latin1.yaml"], 2, ["UTF-8"], None),
    ("yaml not a mapping", ["config", "validate", "{d}/list.yaml"], 2, ["mapping"], None),
    ("empty yaml", ["config", "validate", "{d}/empty.yaml"], 2, ["empty"], None),
    ("zero epochs", ["train", "--epochs", "0", "--out", "{o}"], 2, ["train.epochs=0"], "{o}"),
    ("negative batch size", ["train", "--batch-size", "-4", "--out", "{o}"], 2, ["train.batch_size=-4"], "{o}"),
    ("zero samples", ["generate", "--samples", "0", "-o", "{o}.csv"], 2, ["--samples"], "{o}.csv"),
    (
        "absurd timesteps",
        ["generate", "--timesteps", "1000000000", "-o", "{o}.npz"],
        2,
        ["data.timesteps=1000000000"],
        "{o}.npz",
    ),
    (
        "absurd generated size",
        ["generate", "--samples", "50000000", "--timesteps", "100000", "-o", "{o}.npz"],
        2,
        ["refusing"],
        "{o}.npz",
    ),
    (
        "absurd training size",
        ["train", "--set", "data.samples_per_epoch=10000000", "--set", "data.timesteps=100000", "--out", "{o}"],
        2,
        ["refusing"],
        "{o}",
    ),
    ("unwritable output file", ["generate", "-o", "{d}/blocker/x.csv"], 1, ["cannot write"], "{d}/blocker/x.csv"),
    ("unwritable run directory", ["train", *TINY, "--out", "{d}/blocker/run"], 2, ["cannot write"], None),
    (
        "unknown variant",
        ["compare", "--variants", "gru-forward", "--out", "{o}"],
        2,
        ["unknown variant", "bilstm-concat"],
        "{o}",
    ),
    ("gpu without a gpu", ["train", *TINY, "--device", "gpu", "--out", "{o}"], 2, ["no GPU"], "{o}"),
    ("bad device name", ["train", "--device", "tpu", "--out", "{o}"], 2, ["train.device"], "{o}"),
    ("model file that is not a model", ["evaluate", "{d}/fake.keras"], 1, ["not a loadable Keras model"], None),
    ("missing run directory", ["predict", "{d}/no-run", "{d}/empty.csv"], 2, ["no run directory"], None),
    (
        "F+1 features for an F model",
        ["predict", "{run}", "{d}/two-features.jsonl"],
        1,
        ["2 feature(s) per step", "trained on 1"],
        None,
    ),
    ("missing predict input", ["predict", "{run}", "{d}/nope.jsonl"], 2, ["not found"], None),
    ("evaluate zero samples", ["evaluate", "{run}", "--samples", "0"], 2, ["--samples"], None),
    ("compare resume without a comparison", ["compare", "--resume", "{d}/no-compare"], 2, ["config.yaml"], None),
    (
        "compare resume of a train run",
        ["compare", "--resume", "{run}"],
        2,
        ["not a comparison", "train --resume"],
        None,
    ),
    ("config show of a missing file", ["config", "show", "--data", "{d}/missing.npz"], 2, ["not found"], None),
    ("runs of a missing folder", ["runs", "{d}/no-such-folder"], 2, ["no folder"], None),
    ("runs show of a missing run", ["runs", "show", "{d}/no-run"], 2, ["no run directory"], None),
    (
        "tune on a missing file",
        ["tune", "--data", "{d}/nope.csv", "--trials", "2", "--out", "{o}"],
        2,
        ["not found"],
        "{o}",
    ),
    (
        "tune over an empty range",
        ["tune", "--search", "model.units=int:64:8", "--out", "{o}"],
        2,
        ["empty range"],
        "{o}",
    ),
    ("tune over an unknown key", ["tune", "--search", "model.unit=int:8:64", "--out", "{o}"], 2, ["model.unit"], "{o}"),
    ("export without a run", ["export", "{d}/no-run", "-o", "{o}.onnx"], 2, ["no run directory"], "{o}.onnx"),
    ("export a file that is not a model", ["export", "{d}/fake.keras", "-o", "{o}"], 1, ["not a loadable"], "{o}"),
    ("export without -o", ["export", "{run}"], 2, ["missing option", "-o"], None),
    ("export unknown format", ["export", "{run}", "--format", "tflite", "-o", "{o}"], 2, ["tflite"], "{o}"),
    (
        "export over an existing file",
        ["export", "{run}", "--format", "onnx", "-o", "{d}/empty.csv"],
        2,
        ["empty.csv already exists", "--force"],
        None,
    ),
    ("export onnx into a folder", ["export", "{run}", "--format", "onnx", "-o", "{d}"], 2, ["is a directory"], None),
    (
        "export replacing a folder it did not write",
        ["export", "{run}", "-o", "{d}/no-compare", "--force"],
        2,
        ["has no bilstm.json", "refusing"],
        None,
    ),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    for name, content in FILES.items():
        (folder / name).write_bytes(content)
    (folder / "no-compare").mkdir()
    run = tmp_path_factory.mktemp("model") / "run"
    result = CliRunner().invoke(main, ["train", *TINY, "--seed", "1", "--out", str(run), "--quiet"])
    assert result.exit_code == 0, result.stderr
    return folder, run


def test_every_command_has_bad_input_cases():
    """A new command must bring its bad-input cases to the table above."""
    covered = {args[0] for _, args, *_ in CASES}
    missing = set(main.commands) - covered
    assert not missing, f"commands without a bad-input case: {', '.join(sorted(missing))}"


@pytest.mark.parametrize(("args", "code", "needles", "output"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(files, tmp_path, args, code, needles, output):
    folder, run = files
    fill = {"d": str(folder), "o": str(tmp_path / "out"), "run": str(run)}
    result = CliRunner().invoke(main, [a.format(**fill) for a in args], catch_exceptions=False)
    assert_clean_error(result, code, *needles)
    assert "allow_pickle" not in result.stderr
    if output is not None:
        assert not __import__("os").path.exists(output.format(**fill)), "partial output left behind"
    assert result.stdout == ""
