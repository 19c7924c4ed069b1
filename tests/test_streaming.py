"""Files larger than data.memory_limit (issue 22): read a chunk at a time with the same numbers
as a whole-file read, trained with a seeded two-level shuffle that resumes mid-epoch exactly,
evaluated and predicted a chunk at a time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bilstm_cli.commands import train as train_command
from bilstm_cli.data.dataset import Dataset
from bilstm_cli.data.generator import cumulative_sum_task
from bilstm_cli.data.io import read_dataset, write_dataset
from bilstm_cli.data.prepare import _standardization, read_files
from bilstm_cli.data.streamed import StreamedFile, StreamSource, scan, split_chunks
from bilstm_cli.engine import loop, terms
from bilstm_cli.errors import DataError

from .conftest import stop_request_at
from .test_formats import ragged_dataset
from .test_reliability import history_rows

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
FORMATS = ["csv", "jsonl", "parquet", "parquet-long", "npz"]
SUFFIX = {"csv": "csv", "jsonl": "jsonl", "parquet": "parquet", "parquet-long": "parquet", "npz": "npz"}


def write(dataset: Dataset, path, fmt: str) -> str:
    """Write ``dataset``; Parquet in row groups of 7 rows, so that chunks (and, in long form,
    sequences) span row groups."""
    write_dataset(dataset, str(path), fmt)
    if fmt.startswith("parquet"):
        table = pq.read_table(path)
        pq.write_table(table, path, row_group_size=7)
    return str(path)


def chunks_of(file: StreamedFile) -> list[Dataset]:
    return [file.read(index) for index in range(len(file.chunks))]


def joined(parts: list[Dataset]) -> tuple[np.ndarray, ...]:
    return tuple(np.concatenate([getattr(p, name) for p in parts]) for name in ("x", "y", "lengths"))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("names", [False, True])
def test_a_streamed_file_reads_as_the_whole_file_does(tmp_path, fmt, names):
    data = ragged_dataset(features=2, names=names).subset(np.arange(32) % 4)  # 32 sequences of 1-7 steps
    data.x += np.random.default_rng(1).normal(size=data.x.shape).astype(np.float32) * data.step_mask()[..., None]
    data.ids = None if fmt == "npz" else list(range(32))
    path = write(data, tmp_path / f"d.{SUFFIX[fmt]}", fmt)
    whole = read_dataset(path)
    file = scan(path, fmt, memory_limit=64 * 40)  # chunks of ~40 bytes of text: many chunks
    parts = chunks_of(file)
    assert len(parts) > 2
    x, y, lengths = joined(parts)
    assert np.array_equal(x, whole.x) and np.array_equal(y, whole.y) and np.array_equal(lengths, whole.lengths)
    assert file.classes == whole.classes and file.task == whole.task and file.timesteps == whole.timesteps
    assert file.size == whole.size and file.variable_length == whole.variable_length
    everything = list(range(len(parts)))
    assert np.array_equal(file.counts_of(everything), np.bincount(whole.valid_labels(), minlength=file.num_classes))
    mean, variance = file.standardization_of(everything)
    expected_mean, expected_variance = _standardization(True, whole)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-5)
    np.testing.assert_allclose(variance, expected_variance, rtol=1e-5)


def test_a_label_kind_seen_late_in_the_file_makes_every_chunk_per_step(tmp_path):
    """Auto task: early sequences repeat one label on every step (they look per-sequence alone),
    a later one changes label mid-sequence, so the whole file has per-step labels."""
    lines = ["sequence,step,x,y"]
    for sequence in range(30):
        labels = [0, 0, 1] if sequence == 29 else [sequence % 2] * 3
        lines += [f"{sequence},{step},{0.1 * step},{label}" for step, label in enumerate(labels)]
    path = tmp_path / "late.csv"
    path.write_text("\n".join(lines) + "\n")
    file = scan(str(path), "csv", memory_limit=64 * 100)
    assert len(file.chunks) > 2 and file.task == "per-step"
    assert np.array_equal(joined(chunks_of(file))[1], read_dataset(str(path)).y)


def test_streaming_errors_name_the_file_and_line(tmp_path):
    lines = ["sequence,step,x,y"] + [f"{s},{t},0.5,1" for s in range(40) for t in range(3)]
    lines[100] = "33,1,oops,1"
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        scan(str(path), "csv", memory_limit=64 * 100)
    assert "bad.csv, line 101: column 'x' is not a number: 'oops'" in str(info.value)

    np.savez_compressed(tmp_path / "packed.npz", X=np.zeros((4, 3, 1), np.float32), y=np.zeros(4, np.int64))
    with pytest.raises(DataError, match="compressed, so it cannot be memory-mapped"):
        scan(str(tmp_path / "packed.npz"), "npz", memory_limit=1000)


def test_only_files_over_the_memory_limit_are_streamed(tmp_path):
    from bilstm_cli.config.schema import DataConfig

    path = write(cumulative_sum_task(200, 10, rng=np.random.default_rng(1)), tmp_path / "d.csv", "csv")
    assert isinstance(read_files(DataConfig(train_path=path)).train, Dataset)  # default: 1/8 of memory
    assert isinstance(read_files(DataConfig(train_path=path, memory_limit="100KB")).train, StreamedFile)
    assert DataConfig(memory_limit="1.5GiB").memory_limit == 3 * 2**29


def test_training_batches_are_a_seeded_shuffle_of_every_sequence_once_per_epoch(tmp_path):
    data = cumulative_sum_task(300, 6, rng=np.random.default_rng(2))
    data.x[:, 0, 0] = np.arange(300)  # each sequence's first value names it
    path = write(data, tmp_path / "d.npz", "npz")
    file = scan(path, "npz", memory_limit=16 * 6 * 4 * 20)  # 20 sequences a chunk
    training, held_out = split_chunks(file, 0.2, 4, "data.validation_split")
    assert len(held_out) == 3 and sorted(training + held_out) == list(range(15))
    source = StreamSource(file, training, batch_size=16, seed=9)
    epoch = source.batches(0, 1)
    names = epoch.x[..., 0, 0][epoch.mask[..., 0] > 0]
    expected = np.concatenate([file.read(i).x[:, 0, 0] for i in training])
    assert sorted(names) == sorted(expected) and len(set(names)) == 240  # each once
    assert not np.array_equal(names, np.sort(names))  # shuffled across chunks
    # any range of steps is the same as that part of the whole epoch, whatever came before
    for start, stop in ((0, 1), (3, 8), (14, 15)):
        part = StreamSource(file, training, 16, seed=9).step_batches(0, start, stop)
        for a, b in zip(part.arrays(), epoch.slice(start, stop).arrays()):
            assert np.array_equal(a, b)
    other = StreamSource(file, training, 16, seed=9).batches(1, 2)
    assert not np.array_equal(other.x, epoch.x)  # a new order every epoch
    assert np.array_equal(StreamSource(file, training, 16, seed=9).batches(1, 2).x, other.x)


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "big.csv"
    write_dataset(cumulative_sum_task(600, 8, rng=np.random.default_rng(5)), str(path), "csv")
    return path


def stream_flags(path) -> list[str]:
    return [
        *("--data", path, "--seed", "3", "--units", "4", "--quiet", "--no-tensorboard", "--batch-size", "8"),
        *("--set", "data.memory_limit=500KB", "--set", "data.validation_split=0.25", "--set", "data.standardize=true"),
        *("--set", "train.epochs=3", "--set", "train.jit_compile=false", "--set", "train.log_every=1"),
    ]


def test_a_streamed_run_stopped_mid_epoch_resumes_to_the_same_weights(big_csv, tmp_path, cli, monkeypatch):
    from bilstm_cli.config.schema import DataConfig

    assert isinstance(read_files(DataConfig(train_path=str(big_csv), memory_limit="500KB")).train, StreamedFile)
    reference = tmp_path / "reference"
    assert cli("train", *stream_flags(big_csv), "--out", reference).exit_code == 0

    run = tmp_path / "run"
    monkeypatch.setattr(terms, "MAX_STEPS_PER_CALL", 7)  # ~57 steps an epoch: calls of 7 steps,
    monkeypatch.setattr(loop, "CHUNK_SECONDS", 0.0)  # one call a chunk
    with monkeypatch.context() as patch:
        patch.setattr(train_command, "StopRequest", stop_request_at(3))  # mid-epoch 1
        interrupted = cli("train", *stream_flags(big_csv), "--out", run)
    assert interrupted.exit_code == 130, interrupted.stderr
    with np.load(run / "checkpoint.npz") as archive:
        meta = json.loads(archive["meta"].tobytes().decode())
        assert meta["epoch"] == 0 and 0 < meta["partial_steps"] < 57 and len(archive["partial_epoch"]) == 14
    resumed = cli("train", "--resume", run)
    assert resumed.exit_code == 0, resumed.stderr
    assert "step 14 of epoch 1" in resumed.stderr
    assert history_rows(run) == history_rows(reference)
    with np.load(run / "checkpoint.npz") as a, np.load(reference / "checkpoint.npz") as b:
        keys = [k for k in a.files if k.startswith("v")]
        assert keys and all(np.array_equal(a[k], b[k]) for k in keys)


def test_a_worker_that_cannot_read_a_streamed_file_refuses_naming_host_and_path(big_csv, tmp_path):
    import shutil
    import socket

    from bilstm_cli.config.schema import DataConfig

    path = shutil.copy(big_csv, tmp_path / "shared.csv")
    files = read_files(DataConfig(train_path=str(path), memory_limit="500KB"))
    assert isinstance(files.train, StreamedFile)
    files.check_readable()  # the driver's own view: fine
    path.rename(tmp_path / "moved.csv")  # a node without this filesystem
    with pytest.raises(DataError) as info:
        files.check_readable()
    message = str(info.value)
    assert f"worker on {socket.gethostname()} cannot read {path}" in message
    assert "filesystem every node shares" in message


def test_evaluate_and_predict_stream_a_large_file_with_the_in_memory_numbers(big_csv, tmp_path, cli):
    run = tmp_path / "run"
    assert cli("train", *stream_flags(big_csv), "--out", run).exit_code == 0
    streamed = json.loads(cli("evaluate", run, "--data", big_csv, "--json", "--show", "2").stdout)
    predicted = cli("predict", run, big_csv).stdout
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("memory_limit: 500000", "memory_limit: 2000000000"))
    whole = json.loads(cli("evaluate", run, "--data", big_csv, "--json", "--show", "2").stdout)
    assert streamed["sequences"] == whole["sequences"] == 600 and streamed["examples"] == whole["examples"]
    assert streamed["confusion_matrix"] == whole["confusion_matrix"]
    assert streamed["loss"] == pytest.approx(whole["loss"], rel=1e-12)
    assert predicted == cli("predict", run, big_csv).stdout
    assert predicted.count("\n") == 1 + 600 * 8 and predicted.count("sequence,step") == 1


def test_every_source_makes_any_range_of_steps_as_its_whole_epoch_has_them():
    from bilstm_cli.config.schema import DataConfig
    from bilstm_cli.data.batches import DatasetSource, OnlineSource

    data = cumulative_sum_task(50, 5, rng=np.random.default_rng(3))
    for source in (DatasetSource(data, 8, seed=2), OnlineSource(DataConfig(samples_per_epoch=50), 8, seed=2)):
        epoch = source.batches(3, 4)
        for start, stop in ((0, 2), (2, 7), (6, 7)):
            for a, b in zip(source.step_batches(3, start, stop).arrays(), epoch.slice(start, stop).arrays()):
                assert np.array_equal(a, b)


def test_a_small_training_file_validates_on_a_streamed_validation_file(big_csv, tmp_path, cli):
    from bilstm_cli.config.schema import DataConfig

    small = write(cumulative_sum_task(40, 8, rng=np.random.default_rng(6)), tmp_path / "small.csv", "csv")
    files = read_files(DataConfig(train_path=small, val_path=str(big_csv), memory_limit="300KB"))
    assert isinstance(files.train, Dataset) and isinstance(files.validation, StreamedFile)
    flags = ["--data", small, "--val-data", big_csv, "--seed", "3", "--units", "4", "--quiet", "--no-tensorboard"]
    flags += ["--set", "data.memory_limit=300KB", "--set", "train.epochs=2", "--set", "train.log_every=1"]
    result = cli("train", *flags, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["final"]["validation_sequences"] == 600 and metrics["final"]["val_loss"] > 0


def test_a_refit_stopped_mid_epoch_resumes_to_the_same_weights(big_csv, tmp_path, cli, monkeypatch):
    refit = ["--set", "train.refit.enabled=true", "--set", "train.refit.min_epochs=2"]
    refit += ["--set", "train.early_stopping.patience=1", "--set", "train.early_stopping.start_from=1"]
    monkeypatch.setattr(terms, "MAX_STEPS_PER_CALL", 7)
    monkeypatch.setattr(loop, "CHUNK_SECONDS", 0.0)
    reference = tmp_path / "reference"
    assert cli("train", *stream_flags(big_csv), *refit, "--out", reference).exit_code == 0
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(train_command, "StopRequest", stop_request_at(3, phase=2))  # the refit, mid-epoch
        interrupted = cli("train", *stream_flags(big_csv), *refit, "--out", run)
    assert interrupted.exit_code == 130 and "of the refit" in interrupted.stderr, interrupted.stderr
    with np.load(run / "checkpoint.npz") as archive:
        meta = json.loads(archive["meta"].tobytes().decode())
        assert meta["phase"] == "refit" and meta["epoch"] == 0 and meta["partial_steps"] == 14
    resumed = cli("train", "--resume", run)
    assert resumed.exit_code == 0, resumed.stderr
    with np.load(run / "checkpoint.npz") as a, np.load(reference / "checkpoint.npz") as b:
        keys = [k for k in a.files if k.startswith("v")]
        assert keys and all(np.array_equal(a[k], b[k]) for k in keys)


def test_a_stdin_run_is_not_checked_against_a_file_it_would_stream(big_csv, tmp_path):
    from .conftest import assert_clean_error, run_bilstm

    small = write(cumulative_sum_task(40, 8, rng=np.random.default_rng(6)), tmp_path / "small.csv", "csv")
    data = Path(small).read_bytes()
    first = run_bilstm("train", "--data", "-", "--seed", "1", "--epochs", "1", "--out", tmp_path / "r", input=data)
    assert first.returncode == 0, first.stderr.decode()
    again = run_bilstm(
        "train", "--config", tmp_path / "r" / "config.yaml", "--data", big_csv, "--set", "data.memory_limit=300KB",
        "--out", tmp_path / "r2",
    )  # fmt: skip
    assert_clean_error(again, 2, "larger than data.memory_limit", "standard input", "raise data.memory_limit")


def test_a_streamed_file_with_the_wrong_labels_is_refused_before_training(tmp_path):
    """Per-step labels where one per sequence is needed, and a validation label training never
    saw: refused by the pass over the file, as a whole-file read refuses them."""
    per_step = write(cumulative_sum_task(60, 5, rng=np.random.default_rng(1)), tmp_path / "steps.jsonl", "jsonl")
    with pytest.raises(DataError, match="labels are given per step, but the model predicts one label per sequence"):
        scan(per_step, "jsonl", memory_limit=64 * 300, task="sequence")

    validation = ragged_dataset(names=True).subset(np.arange(40) % 4)  # classes cat, dog, emu
    validation.ids = list(range(40))
    path = write(validation, tmp_path / "val.csv", "csv")
    file = scan(path, "csv", memory_limit=64 * 200)
    assert len(file.chunks) > 1 and file.classes == ["cat", "dog", "emu"]
    with pytest.raises(DataError, match="label 'emu' was never seen in training"):
        file.align_to(["cat", "dog"], 2, file.timesteps, path)
    known = ["ant", "cat", "dog", "emu"]
    assert file.align_to(known, 4, file.timesteps, path).read(0).classes == known


def test_a_dry_run_of_long_epochs_times_their_first_steps(big_csv, cli, monkeypatch):
    from bilstm_cli.engine import probe

    monkeypatch.setattr(terms, "MAX_STEPS_PER_CALL", 7)  # ~57 steps an epoch in calls of 7 steps
    monkeypatch.setattr(loop, "CHUNK_SECONDS", 0.0)
    monkeypatch.setattr(probe, "PROBE_SECONDS", 0.0)  # the timed part: one chunk of steps
    result = cli("train", *stream_flags(big_csv), "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["probe"]["epochs"] == pytest.approx(7 / plan["steps_per_epoch"])
    assert plan["estimate_seconds"] > 0
    people = cli("train", *stream_flags(big_csv), "--dry-run")
    assert f"{7 / plan['steps_per_epoch']:.3g} of an epoch of 1 run(s)" in people.stderr + people.stdout


@pytest.mark.parametrize("fmt", ["parquet", "parquet-long"])
def test_a_parquet_row_group_larger_than_a_chunk_is_read_in_slices(tmp_path, fmt):
    data = cumulative_sum_task(300, 6, rng=np.random.default_rng(8))
    path = str(tmp_path / "one-group.parquet")
    write_dataset(data, path, fmt)
    pq.write_table(pq.read_table(path), path, row_group_size=10**6)  # one row group, as pandas writes
    assert pq.ParquetFile(path).metadata.num_row_groups == 1
    file = scan(path, fmt, memory_limit=16 * 50_000)
    assert len(file.chunks) >= 3
    x, y, lengths = joined(chunks_of(file))
    assert np.array_equal(x, data.x) and np.array_equal(y, data.y) and np.array_equal(lengths, data.lengths)
    kept, held = split_chunks(file, 0.2, 1, "data.validation_split")
    assert held and kept
