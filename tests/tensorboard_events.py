"""Read TensorBoard event files back without TensorFlow or TensorBoard (tests only).

An event file is a TFRecord stream: per record an 8-byte length, a 4-byte CRC of the length,
the data (an ``Event`` protocol buffer, parsed with tensorboardX's bundled definitions) and a
4-byte CRC of the data. Read strictly: a step written twice for a tag, in any of a run's files,
fails (TensorBoard would hide some duplicates behind a purge event, other readers would not).
"""

from __future__ import annotations

import csv
import math
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tensorboardX.proto.event_pb2 import Event

from bilstm_cli.runs.checkpoint import load_checkpoint


def read_events(path: Path) -> Iterator[Event]:
    with open(path, "rb") as handle:
        while True:
            header = handle.read(12)
            if len(header) < 12:
                return
            (length,) = struct.unpack("<Q", header[:8])
            data = handle.read(length)
            if len(data) < length or len(handle.read(4)) < 4:
                return  # a truncated last record: a writer killed mid-write
            yield Event.FromString(data)


def trailing_bytes(path: Path) -> int:
    """Bytes after the last whole record (a record cut short by a killed writer)."""
    data, position = path.read_bytes(), 0
    while position + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[position : position + 8])
        if position + 16 + length > len(data):
            break
        position += 16 + length
    return len(data) - position


def read_run(directory: Path) -> tuple[dict[str, dict[int, float]], dict[str, str]]:
    """Scalars ``{tag: {step: value}}`` and texts ``{tag: text}`` of one TensorBoard run."""
    scalars: dict[str, dict[int, float]] = {}
    texts: dict[str, str] = {}
    for path in sorted(directory.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime_ns):
        for event in read_events(path):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    steps = scalars.setdefault(value.tag, {})
                    assert event.step not in steps, f"{value.tag} written twice at step {event.step}"
                    steps[event.step] = value.simple_value
                elif value.metadata.plugin_data.plugin_name == "text":
                    texts[value.tag] = value.tensor.string_val[0].decode()
    return scalars, texts


def f32(value: float) -> float:
    """What a float becomes in an event file (TensorBoard stores float32)."""
    return float(np.float32(value))


def csv_history(run) -> list[dict[str, float]]:
    with open(run / "history.csv", newline="") as handle:
        return [{k: float(v) if v else math.nan for k, v in row.items()} for row in csv.DictReader(handle)]


def assert_events_match_history(run, learning_rate: float) -> None:
    """Every epoch's loss and accuracy, validation and learning rate at logged epochs: exactly
    the checkpoint's history in float32, and history.csv within its 6 significant digits."""
    scalars, texts = read_run(run / "tensorboard")
    _, meta = load_checkpoint(run)
    history = meta["history"]
    epochs = history["epoch"]
    logged = [e for e, v in zip(epochs, history["val_loss"]) if v is not None and not math.isnan(v)]
    for tag in ("loss", "accuracy"):
        assert scalars[tag] == {e: f32(v) for e, v in zip(epochs, history[tag])}, tag
    for tag in ("val_loss", "val_accuracy"):
        assert scalars[tag] == {e: f32(v) for e, v in zip(epochs, history[tag]) if e in logged}, tag
    assert scalars["learning_rate"] == {e: f32(learning_rate) for e in logged}
    rows = csv_history(run)
    assert [int(r["epoch"]) for r in rows] == epochs
    for row in rows:
        for tag in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if not math.isnan(row[tag]):
                assert scalars[tag][int(row["epoch"])] == pytest.approx(row[tag], rel=1e-5, abs=1e-7)
    assert texts["config/text_summary"] == "```yaml\n" + (run / "config.yaml").read_text() + "```"
