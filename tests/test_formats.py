"""Dataset files: round trips for NPZ, CSV and JSONL, and the loader's refusals."""

from __future__ import annotations

import io

import numpy as np
import pytest

from bilstm_cli.data.dataset import Dataset
from bilstm_cli.data.generator import cumulative_sum_task
from bilstm_cli.data.io import read_dataset, write_dataset
from bilstm_cli.errors import DataError, UsageError

FORMATS = ["csv", "npz", "jsonl"]


def ragged_dataset(features: int = 3, names: bool = False, per_sequence: bool = False) -> Dataset:
    rng = np.random.default_rng(0)
    lengths = np.array([4, 7, 1, 7])
    x = np.zeros((4, 7, features), np.float32)
    for i, length in enumerate(lengths):
        x[i, :length] = rng.normal(size=(length, features))
    if per_sequence:
        y = np.array([0, 2, 1, 2])
    else:
        y = np.zeros((4, 7), np.int64)
        for i, length in enumerate(lengths):
            y[i, :length] = rng.integers(0, 3, length)
    return Dataset(x, y, lengths, ["cat", "dog", "emu"] if names else None)


def assert_same(a: Dataset, b: Dataset) -> None:
    assert np.array_equal(a.x, b.x)
    assert np.array_equal(a.y, b.y)
    assert np.array_equal(a.lengths, b.lengths)
    assert a.classes == b.classes


@pytest.mark.parametrize("fmt", FORMATS)
def test_generated_round_trip(tmp_path, fmt):
    data = cumulative_sum_task(20, 10, rng=np.random.default_rng(3))
    path = tmp_path / f"data.{fmt}"
    write_dataset(data, str(path))
    assert_same(read_dataset(str(path)), data)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("names", [False, True])
def test_ragged_multifeature_round_trip(tmp_path, fmt, names):
    data = ragged_dataset(names=names)
    path = tmp_path / f"data.{fmt}"
    write_dataset(data, str(path))
    assert_same(read_dataset(str(path)), data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_per_sequence_labels_round_trip(tmp_path, fmt):
    data = ragged_dataset(per_sequence=True, names=True)
    path = tmp_path / f"data.{fmt}"
    write_dataset(data, str(path))
    assert_same(read_dataset(str(path), task="sequence"), data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_stdin_is_sniffed(fmt):
    data = ragged_dataset()
    buffer = io.BytesIO()
    write_dataset(data, "-", fmt, stdout=buffer)
    assert_same(read_dataset("-", stdin=io.BytesIO(buffer.getvalue())), data)


def test_csv_layout_is_long_form(tmp_path):
    data = cumulative_sum_task(2, 3, rng=np.random.default_rng(0))
    write_dataset(data, str(tmp_path / "d.csv"))
    lines = (tmp_path / "d.csv").read_text().splitlines()
    assert lines[0] == "sequence,step,x,y"
    assert [line.split(",")[:2] for line in lines[1:]] == [
        ["0", "0"],
        ["0", "1"],
        ["0", "2"],
        ["1", "0"],
        ["1", "1"],
        ["1", "2"],
    ]


def test_npz_layout(tmp_path):
    write_dataset(ragged_dataset(), str(tmp_path / "d.npz"))
    with np.load(tmp_path / "d.npz") as archive:
        assert archive["X"].dtype == np.float32 and archive["X"].shape == (4, 7, 3)
        assert archive["y"].shape == (4, 7) and archive["lengths"].tolist() == [4, 7, 1, 7]


def bad(tmp_path, name: str, content: str | bytes, *needles: str, task: str | None = None, error=DataError):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(error) as info:
        read_dataset(str(path), task=task)
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    return message


def test_csv_missing_columns(tmp_path):
    bad(tmp_path, "d.csv", "seq,step,x,y\n0,0,0.1,0\n", "missing column", "sequence")
    bad(tmp_path, "d.csv", "sequence,step,y\n0,0,0\n", "missing feature column")


def test_csv_non_numeric_and_empty_cells(tmp_path):
    bad(tmp_path, "d.csv", "sequence,step,x,y\n0,0,0.1,0\n0,1,abc,1\n", "line 3", "'x'", "'abc'")
    bad(tmp_path, "d.csv", "sequence,step,x,y\n0,0,,0\n", "line 2", "empty")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_csv_nan_and_inf(tmp_path, value):
    bad(tmp_path, "d.csv", f"sequence,step,x,y\n0,0,0.1,0\n0,1,{value},1\n", "line 3")


@pytest.mark.parametrize("label", ["-1", "0.5"])
def test_csv_labels_must_be_integers_at_least_zero(tmp_path, label):
    bad(tmp_path, "d.csv", f"sequence,step,x,y\n0,0,0.1,0\n0,1,0.2,{label}\n", "not a class number", "line 3")


def test_csv_mixed_numeric_and_text_labels(tmp_path):
    bad(tmp_path, "d.csv", "sequence,step,x,y\n0,0,0.1,0\n0,1,0.2,cat\n", "mix numbers")


def test_csv_steps_out_of_order_or_duplicated(tmp_path):
    bad(tmp_path, "d.csv", "sequence,step,x,y\n0,0,0.1,0\n0,2,0.2,1\n", "line 3", "out of order")
    bad(tmp_path, "d.csv", "sequence,step,x,y\n0,0,0.1,0\n0,0,0.2,1\n", "line 3", "duplicated")


def test_empty_inputs(tmp_path):
    bad(tmp_path, "d.csv", "", "empty")
    bad(tmp_path, "d.csv", "sequence,step,x,y\n", "no rows")
    bad(tmp_path, "d.jsonl", "\n\n", "empty")


def test_jsonl_errors_name_the_line(tmp_path):
    bad(tmp_path, "d.jsonl", '{"x": [0.1], "y": [0]}\n{"x": [0.1, }\n', "line 2", "malformed JSON")
    bad(tmp_path, "d.jsonl", '{"x": [0.1, "a"], "y": [0, 0]}\n', "line 1", "numbers")
    bad(tmp_path, "d.jsonl", '{"x": [0.1, 0.2], "y": [0]}\n', "line 1", "1 labels", "2 steps")
    bad(tmp_path, "d.jsonl", '{"x": [0.1], "y": [0]}\n{"x": [[0.1, 0.2]], "y": [0]}\n', "features")
    bad(tmp_path, "d.jsonl", '{"x": [NaN], "y": [0]}\n', "line 1", "not a finite number")


def test_npz_errors(tmp_path):
    bad(tmp_path, "d.npz", b"PK\x03\x04 definitely not a zip", "not a valid NPZ file")
    buffer = io.BytesIO()
    np.savez(buffer, X=np.zeros((3, 4, 1)), y=np.zeros((2, 4)))
    bad(tmp_path, "d.npz", buffer.getvalue(), "y has shape (2, 4)", "3 sequences")
    buffer = io.BytesIO()
    np.savez(buffer, X=np.array([["a", "b"]]))
    bad(tmp_path, "d.npz", buffer.getvalue(), "must be numeric")
    buffer = io.BytesIO()
    np.savez(buffer, data=np.zeros(3))
    bad(tmp_path, "d.npz", buffer.getvalue(), "no array 'X'")


def test_per_sequence_file_for_a_per_step_model(tmp_path):
    bad(tmp_path, "d.jsonl", '{"x": [0.1, 0.2], "y": 1}\n', "one per sequence", task="per-step")


def test_non_utf8_text(tmp_path):
    bad(tmp_path, "d.csv", "sequence,step,x,y\n0,0,0.1,caf\xe9\n".encode("latin-1"), "line 2", "UTF-8")


def test_missing_file_and_directory_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        read_dataset(str(tmp_path / "none.csv"))
    with pytest.raises(UsageError, match="directory"):
        read_dataset(str(tmp_path))


def test_unknown_extension(tmp_path):
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(UsageError, match="cannot tell the format"):
        read_dataset(str(tmp_path / "d.xlsx"))


def test_byte_order_mark_on_stdin_is_not_content():
    data = ragged_dataset()
    buffer = io.BytesIO()
    write_dataset(data, "-", "jsonl", stdout=buffer)
    assert_same(read_dataset("-", stdin=io.BytesIO(b"\xef\xbb\xbf" + buffer.getvalue())), data)


def test_csv_row_with_extra_fields_names_its_line(tmp_path):
    bad(tmp_path, "d.csv", "sequence,step,x,y\n0,0,0.1,0\n0,1,0.2,1,9\n", "line 3", "saw 5")
    bad(tmp_path, "d.csv", "sequence,step,x,y\n0,0,0.1,0,9\n0,1,0.2,1\n", "line 2", "5 fields", "header has 4")


def test_csv_trailing_delimiters_are_tolerated(tmp_path):
    (tmp_path / "d.csv").write_text("sequence,step,x,y\n0,0,0.5,0,\n0,1,0.25,1,\n")
    data = read_dataset(str(tmp_path / "d.csv"))
    assert data.x[0, :, 0].tolist() == [0.5, 0.25] and data.y.tolist() == [[0, 1]]


def test_csv_empty_sequence_id(tmp_path):
    bad(tmp_path, "d.csv", "sequence,step,x,y\na,0,0.1,0\n,0,0.2,1\n", "line 3", "'sequence' is empty")


def test_csv_keeps_sequence_ids_and_strips_label_spaces(tmp_path):
    (tmp_path / "d.csv").write_text("sequence,step,x,y\nb,0,0.1,cat \nb,1,0.2,cat\na,0,0.3,dog\n")
    data = read_dataset(str(tmp_path / "d.csv"))
    assert data.ids == ["b", "a"] and data.classes == ["cat", "dog"]
    assert data.subset(np.array([1])).ids == ["a"]


@pytest.mark.parametrize("label", ["1e20", "99999999999999999999", "70000"])
def test_huge_labels_are_refused(tmp_path, label):
    bad(tmp_path, "d.csv", f"sequence,step,x,y\n0,0,0.1,0\n0,1,0.2,{label}\n", "not a class number", "line 3")
    bad(tmp_path, "d.jsonl", f'{{"x": [0.1], "y": [{label}]}}\n', "not a class number")


def test_jsonl_nested_labels(tmp_path):
    bad(tmp_path, "d.jsonl", '{"x": [1, 2], "y": [[1], [0]]}\n', "line 1", "one label per step")


def test_npz_text_labels_per_step(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((2, 3)), y=np.array([["a", "b", "pad"], ["b", "b", "b"]]), lengths=np.array([2, 3]))
    data = read_dataset(str(path))
    assert data.classes == ["a", "b"]  # the padded step's 'pad' is not a class
    assert data.y.tolist() == [[0, 1, 0], [1, 1, 1]]


def test_ts_repeated_class_label(tmp_path):
    bad(tmp_path, "d.ts", "@problemName x\n@classLabel true a a b\n@data\n1,2:a\n", "'a' more than once", "line 2")
