"""``bilstm generate`` writes CSV and Parquet files block by block (bounded memory): the same
file as drawing and writing everything at once."""

from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from bilstm_cli.commands import generate
from bilstm_cli.commands.requests import resolve
from bilstm_cli.data.generator import cumulative_sum_task
from bilstm_cli.data.io import write_dataset
from bilstm_cli.errors import UsageError

BLOCK = 7  # small, and 7 x 5 steps is odd: a block ends halfway through a 64-bit draw


def config(seed=3, timesteps=5, threshold=None, task=None):
    return resolve(
        None,
        (),
        {"data.seed": seed, "data.timesteps": timesteps, "data.threshold": threshold, "data.task": task},
    )


def one_shot(path, samples, fmt=None, seed=3, timesteps=5, threshold=0.25, task="per-step"):
    """What the one-shot path writes: every sequence drawn at once, then write_dataset."""
    dataset = cumulative_sum_task(samples, timesteps, threshold, np.random.default_rng(seed), task)
    write_dataset(dataset, str(path), fmt)
    return dataset


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(generate, "BLOCK_SEQUENCES", BLOCK)


@pytest.mark.parametrize("task", ["per-step", "sequence"])
def test_csv_written_in_blocks_is_byte_identical(tmp_path, small_blocks, task):
    result = generate.run_generate(config(task=task), 50, str(tmp_path / "blocks.csv"), None)
    one_shot(tmp_path / "once.csv", 50, task=task)
    assert result.fmt == "csv"
    written = (tmp_path / "blocks.csv").read_bytes()
    assert written == (tmp_path / "once.csv").read_bytes()
    lines = written.decode().splitlines()
    assert lines[0] == "sequence,step,x,y" and lines.count("sequence,step,x,y") == 1
    assert len(lines) == 1 + 50 * 5
    # sequence numbers continue across blocks: the second block starts at BLOCK
    assert [line.split(",")[0] for line in lines[1 + BLOCK * 5 - 1 : 1 + BLOCK * 5 + 1]] == ["6", "7"]
    assert lines[-1].startswith("49,4,")


@pytest.mark.parametrize(("fmt", "name"), [(None, "d.parquet"), ("parquet-long", "d.parquet")])
@pytest.mark.parametrize("task", ["per-step", "sequence"])
def test_parquet_written_in_blocks_is_the_same_table(tmp_path, small_blocks, fmt, name, task):
    samples = 50
    (tmp_path / "b").mkdir()
    result = generate.run_generate(config(task=task), samples, str(tmp_path / "b" / name), fmt)
    one_shot(tmp_path / name, samples, fmt, task=task)
    assert result.fmt == (fmt or "parquet")
    blocks, once = pq.read_table(tmp_path / "b" / name), pq.read_table(tmp_path / name)
    assert blocks.schema == once.schema
    assert blocks.equals(once)
    assert blocks.num_rows == (samples * 5 if fmt == "parquet-long" else samples)
    metadata = pq.ParquetFile(tmp_path / "b" / name).metadata
    assert metadata.num_row_groups == math.ceil(samples / BLOCK)
    rows_per_sequence = 5 if fmt == "parquet-long" else 1
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sizes == [BLOCK * rows_per_sequence] * 7 + [1 * rows_per_sequence]


def test_the_default_block_is_65536_sequences():
    assert generate.BLOCK_SEQUENCES == 65_536


def test_one_block_when_the_samples_fit(tmp_path):
    generate.run_generate(config(), 50, str(tmp_path / "d.parquet"), None)
    assert pq.ParquetFile(tmp_path / "d.parquet").metadata.num_row_groups == 1


def test_the_one_class_warning_counts_labels_over_all_blocks(tmp_path, monkeypatch):
    # one sequence per block: every block holds a single label, the file holds both
    monkeypatch.setattr(generate, "BLOCK_SEQUENCES", 1)
    both = generate.run_generate(config(task="sequence", threshold=0.5), 40, str(tmp_path / "a.csv"), None)
    assert both.warning is None
    one = generate.run_generate(config(task="sequence"), 40, str(tmp_path / "b.csv"), None)
    assert one.warning is not None and "every label is 1" in one.warning and "--threshold 0.5" in one.warning
    # fewer than 20 labels in all: no warning, though 19 blocks of one label each
    few = generate.run_generate(config(task="sequence"), 19, str(tmp_path / "c.csv"), None)
    assert few.warning is None


def test_an_interrupted_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch, small_blocks):
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return cumulative_sum_task(*args, **kwargs)

    monkeypatch.setattr(generate, "cumulative_sum_task", interrupted)
    for name in ("d.csv", "d.parquet"):
        calls.clear()
        (tmp_path / name).write_text("previous")
        with pytest.raises(KeyboardInterrupt):
            generate.run_generate(config(), 50, str(tmp_path / name), None)
        assert len(calls) == 3
        assert (tmp_path / name).read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "d.parquet"]


def test_the_memory_limit_applies_to_one_block_for_blockwise_formats(tmp_path, monkeypatch, small_blocks):
    # 50 sequences need more than the limit, one block of 7 does not
    monkeypatch.setattr(generate, "MAX_GENERATED_BYTES", 20 * 5 * generate.BYTES_PER_STEP)
    for name in ("d.csv", "d.parquet"):
        generate.run_generate(config(), 50, str(tmp_path / name), None)
        assert (tmp_path / name).stat().st_size > 0
    for output, fmt in ((str(tmp_path / "d.npz"), None), (str(tmp_path / "d.jsonl"), None), ("-", "csv")):
        with pytest.raises(UsageError, match="50 sequences x 5 steps"):
            generate.run_generate(config(), 50, output, fmt)
    assert not (tmp_path / "d.npz").exists() and not (tmp_path / "d.jsonl").exists()
    monkeypatch.setattr(generate, "MAX_GENERATED_BYTES", 6 * 5 * generate.BYTES_PER_STEP)
    with pytest.raises(UsageError, match="each block of 7 sequences"):
        generate.run_generate(config(), 50, str(tmp_path / "e.csv"), None)
    assert not (tmp_path / "e.csv").exists()


def test_the_cli_writes_blockwise_files(tmp_path, cli):
    result = cli("generate", "--samples", "30", "--seed", "4", "--timesteps", "5", "-o", tmp_path / "a.csv")
    assert result.exit_code == 0 and "wrote 30 sequences x 5 steps (csv)" in result.stderr
    one_shot(tmp_path / "b.csv", 30, seed=4)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_a_long_layout_block_of_more_than_a_million_rows_stays_one_row_group(tmp_path):
    """pyarrow splits a table into row groups of at most 1 Mi rows unless told otherwise:
    65,536 sequences x 17 steps is 1,114,112 rows, still one block."""
    samples = generate.BLOCK_SEQUENCES + 1
    generate.run_generate(config(timesteps=17), samples, str(tmp_path / "d.parquet"), "parquet-long")
    metadata = pq.ParquetFile(tmp_path / "d.parquet").metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sizes == [generate.BLOCK_SEQUENCES * 17, 17]


@pytest.mark.parametrize("fmt", ["parquet", "parquet-long"])
def test_parquet_blocks_dictionary_encode_labels_not_random_features(tmp_path, fmt):
    generate.run_generate(config(), 50, str(tmp_path / "d.parquet"), fmt)
    group = pq.ParquetFile(tmp_path / "d.parquet").metadata.row_group(0)
    dictionary = {
        group.column(i).path_in_schema: "RLE_DICTIONARY" in group.column(i).encodings for i in range(group.num_columns)
    }
    if fmt == "parquet":
        assert dictionary == {"x.list.element": False, "y.list.element": True}
    else:
        assert dictionary == {"sequence": True, "step": True, "x": False, "y": True}
