"""Parquet datasets: both layouts round-trip, files written by pandas / pyarrow read as documented,
and bad files are refused naming the file, the column and the row."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from bilstm_cli.data.generator import cumulative_sum_task
from bilstm_cli.data.io import read_dataset, write_dataset
from bilstm_cli.errors import DataError, UsageError

from .test_formats import assert_same, ragged_dataset

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
LAYOUTS = ["parquet", "parquet-long"]


def write_table(path, columns: dict) -> str:
    pq.write_table(pa.table(columns), path)
    return str(path)


def bad(tmp_path, columns: dict, *needles: str, task: str | None = None, error=DataError) -> str:
    path = write_table(tmp_path / "d.parquet", columns)
    with pytest.raises(error) as info:
        read_dataset(path, task=task)
    message = str(info.value)
    assert "d.parquet" in message, message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.mark.parametrize("fmt", LAYOUTS)
def test_generated_round_trip(tmp_path, fmt):
    data = cumulative_sum_task(20, 10, rng=np.random.default_rng(3))
    write_dataset(data, str(tmp_path / "d.parquet"), fmt)
    assert_same(read_dataset(str(tmp_path / "d.parquet")), data)


@pytest.mark.parametrize("fmt", LAYOUTS)
@pytest.mark.parametrize("names", [False, True])
@pytest.mark.parametrize("features", [1, 3])
def test_ragged_round_trip(tmp_path, fmt, names, features):
    data = ragged_dataset(features=features, names=names)
    write_dataset(data, str(tmp_path / "d.parquet"), fmt)
    assert_same(read_dataset(str(tmp_path / "d.parquet")), data)


@pytest.mark.parametrize("fmt", LAYOUTS)
def test_per_sequence_labels_round_trip(tmp_path, fmt):
    data = ragged_dataset(per_sequence=True, names=True)
    write_dataset(data, str(tmp_path / "d.parquet"), fmt)
    assert_same(read_dataset(str(tmp_path / "d.parquet")), data)  # auto: one label per sequence


def test_layouts_on_disk(tmp_path):
    data = ragged_dataset(features=2, names=True)
    write_dataset(data, str(tmp_path / "rows.parquet"))
    write_dataset(data, str(tmp_path / "long.parquet"), "parquet-long")
    rows = pq.read_table(tmp_path / "rows.parquet")
    assert rows.column_names == ["x", "y"] and rows.num_rows == 4
    assert str(rows.schema.field("x").type) == "list<element: list<element: float>>"
    long = pq.read_table(tmp_path / "long.parquet")
    assert long.column_names == ["sequence", "step", "x0", "x1", "y"] and long.num_rows == 19


@pytest.mark.parametrize("fmt", LAYOUTS)
def test_stdin_is_sniffed(fmt):
    data = ragged_dataset()
    buffer = io.BytesIO()
    write_dataset(data, "-", fmt, stdout=buffer)
    assert_same(read_dataset("-", stdin=io.BytesIO(buffer.getvalue())), data)


def test_pandas_files(tmp_path):
    pd = pytest.importorskip("pandas")
    rows = pd.DataFrame(
        {"sequence": ["a", "b"], "x": [[0.5, 1.0, 2.0], [3, 4]], "y": pd.Categorical(["up", "down"])},
        index=[10, 11],  # a non-default index: pandas stores it as __index_level_0__
    )
    rows.to_parquet(tmp_path / "rows.parquet")
    data = read_dataset(str(tmp_path / "rows.parquet"))
    assert data.ids == ["a", "b"] and data.classes == ["down", "up"] and data.y.tolist() == [1, 0]
    assert data.lengths.tolist() == [3, 2] and data.x[1, :2, 0].tolist() == [3.0, 4.0]
    long = pd.DataFrame({"sequence": [7, 7, 8], "step": [0, 1, 0], "x": [0.1, 0.2, 0.3], "y": [0, 1, 1]})
    long.to_parquet(tmp_path / "long.parquet", index=False)
    data = read_dataset(str(tmp_path / "long.parquet"))
    assert data.ids == [7, 8] and data.y.tolist() == [[0, 1], [1, 0]] and data.lengths.tolist() == [2, 1]


def test_rows_layout_errors(tmp_path):
    bad(tmp_path, {"x": [[0.1, 0.2], None], "y": [0, 1]}, "row 1", "'x'", "missing")
    bad(tmp_path, {"x": [[0.1, 0.2], []], "y": [0, 1]}, "row 1", "empty list")
    bad(tmp_path, {"x": [[0.1, 0.2], [0.3, float("nan")]], "y": [0, 1]}, "row 1", "'x'", "NaN")
    bad(tmp_path, {"x": [[0.1], [0.3, None]], "y": [0, 1]}, "row 1", "'x'", "missing")
    bad(tmp_path, {"x": [["a", "b"]], "y": [0]}, "column 'x'", "not numbers")
    bad(tmp_path, {"x": [[[1.0, 2.0]], [[1.0, 2.0], [3.0]]], "y": [0, 1]}, "row 1", "step 1 has 1 features", "2")
    bad(tmp_path, {"x": [[0.1, 0.2]], "y": [[0]]}, "row 0", "1 labels", "2 steps")
    bad(tmp_path, {"x": [[0.1], [0.2]], "y": [0, None]}, "row 1", "'y'", "missing")
    bad(tmp_path, {"x": [[0.1], [0.2]], "y": [0, -1]}, "row 1", "not a class number")
    bad(tmp_path, {"x": [[0.1], [0.2]], "y": [0.0, 0.5]}, "row 1", "0.5", "not a class number")
    bad(tmp_path, {"x": [[0.1, 0.2], [0.3]], "y": [[0, 1], [-4]]}, "row 1", "-4", "not a class number")
    bad(tmp_path, {"x": [[0.1]], "y": [0], "weight": [1.0]}, "unexpected column 'weight'")
    bad(tmp_path, {"x": [[0.1], [0.2]], "y": ["a", " "]}, "row 1", "empty string")
    bad(tmp_path, {"x": [[0.1, 0.2], [0.3]], "y": [["a", "b"], [""]]}, "row 1", "empty string")
    bad(tmp_path, {"x": [[0.1]], "y": [0], "sequence": [0.5]}, "column 'sequence' holds double")
    bad(tmp_path, {"x": [[0.1, 0.2]], "y": [1]}, "one per sequence", task="per-step")


def test_long_layout_errors(tmp_path):
    long = {"sequence": [0, 0, 1], "step": [0, 1, 0], "x": [0.1, 0.2, 0.3], "y": [0, 1, 1]}
    bad(tmp_path, {k: v for k, v in long.items() if k != "step"}, "neither Parquet layout", "found: sequence, x, y")
    bad(tmp_path, {**long, "x": [0.1, None, 0.3]}, "row 1", "column 'x'", "missing")
    bad(tmp_path, {**long, "x": [0.1, float("inf"), 0.3]}, "row 1", "column 'x'", "inf")
    bad(tmp_path, {**long, "x": ["0.1", "0.2", "0.3"]}, "column 'x' holds string", "not numbers")
    bad(tmp_path, {**long, "step": [0.0, 1.0, 0.0]}, "column 'step' holds double", "integers")
    bad(tmp_path, {**long, "step": [0, 2, 0]}, "row 1", "out of order")
    bad(tmp_path, {**long, "step": [0, 0, 0]}, "row 1", "duplicated")
    bad(tmp_path, {**long, "y": [0, None, 1]}, "row 1", "'y'", "missing")
    bad(tmp_path, {**long, "sequence": [0, None, 1]}, "row 1", "'sequence'", "missing")
    bad(tmp_path, {"sequence": [0], "step": [0], "x0": [0.1], "x2": [0.1], "y": [0]}, "'x1' is missing")
    bad(tmp_path, long, "different labels", task="sequence")


def test_not_parquet_and_empty(tmp_path):
    (tmp_path / "d.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(DataError, match="not a Parquet file"):
        read_dataset(str(tmp_path / "d.parquet"))
    (tmp_path / "d.parquet").write_bytes(b"PAR1" + b"\0" * 20 + b"PAR1")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        read_dataset(str(tmp_path / "d.parquet"))
    bad(tmp_path, {"x": pa.array([], pa.list_(pa.float32())), "y": pa.array([], pa.int64())}, "no rows")


def test_decoded_size_is_capped_before_decoding(tmp_path, monkeypatch):
    from bilstm_cli.data.formats import parquet

    write_dataset(ragged_dataset(), str(tmp_path / "d.parquet"))
    monkeypatch.setattr(parquet, "MAX_DECODED_BYTES", 100)
    with pytest.raises(DataError, match="once decoded, more than"):
        read_dataset(str(tmp_path / "d.parquet"))


def test_missing_pyarrow_says_how_to_install(tmp_path, monkeypatch):
    path = str(tmp_path / "d.parquet")
    write_dataset(ragged_dataset(), path)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    for action in (lambda: read_dataset(path), lambda: write_dataset(ragged_dataset(), path)):
        with pytest.raises(UsageError) as info:
            action()
        assert "pyarrow" in str(info.value) and 'pip install "bilstm[parquet]"' in str(info.value)


def test_generate_parquet_cli(cli, tmp_path):
    result = cli("generate", "--samples", "6", "--timesteps", "5", "--seed", "2", "-o", tmp_path / "g.parquet")
    assert result.exit_code == 0, result.stderr
    data = read_dataset(str(tmp_path / "g.parquet"))
    assert data.size == 6 and data.timesteps == 5
    result = cli(
        "generate",
        "--samples",
        "6",
        "--timesteps",
        "5",
        "--seed",
        "2",
        "--format",
        "parquet-long",
        "-o",
        tmp_path / "long.parquet",
    )
    assert result.exit_code == 0, result.stderr
    assert_same(read_dataset(str(tmp_path / "long.parquet")), data)


def test_train_evaluate_predict_on_parquet(cli, tmp_path, tiny):
    """The one end-to-end run: a tiny model trained, scored and used on Parquet files."""
    data = ragged_dataset(features=2, per_sequence=True, names=True)
    train = tmp_path / "train.parquet"
    write_dataset(data, str(train))
    flags = tiny(epochs=2, samples_per_epoch=None, validation_size=None, units=4, log_every=1, seed=1)
    result = cli("train", "--data", train, "--val-data", train, *flags, "--out", tmp_path / "run", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert cli("evaluate", tmp_path / "run", "--data", train).exit_code == 0
    write_dataset(data, str(tmp_path / "in.parquet"), "parquet-long")
    lines = cli("predict", tmp_path / "run", tmp_path / "in.parquet").stdout.splitlines()
    assert lines[0].startswith("sequence,class") and len(lines) == 5
