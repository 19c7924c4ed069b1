"""Training data from standard input: what a run's config.yaml records about it.

``train --data -`` cannot record a path that a re-run could read again, so config.yaml gets
``data.train_path: null`` and ``data.stdin: {sequences, steps, sha256}``. Running that config
again then needs the data once more (``--data FILE`` or ``--data -``), and refuses data that
is not the same.

The fingerprint is a SHA-256 of the parsed data (features of the real steps as float32,
lengths, labels, class names), not of the bytes: the same sequences match whatever the format,
number formatting or line endings, and anything that changes training does not match.
"""

from __future__ import annotations

from ..config.schema import Config, DataConfig, StdinData
from ..errors import UsageError
from ..fileio.digest import fingerprint as digest_of
from .dataset import Dataset
from .formats import STDIN


def fingerprint(dataset: Dataset) -> StdinData:
    """Number of sequences and real steps, and the SHA-256 of the parsed data."""
    mask = dataset.step_mask()
    parts = [dataset.task, dataset.lengths.astype("<i8"), dataset.x[mask].astype("<f4")]  # padding does not count
    if dataset.y is not None:
        parts.append((dataset.y if dataset.y.ndim == 1 else dataset.y[mask]).astype("<i8"))
    parts.append("\0".join(dataset.classes or []))
    return StdinData(sequences=dataset.size, steps=int(dataset.lengths.sum()), sha256=digest_of(parts))


def require_data(data: DataConfig, resume: str | None = None) -> None:
    """Refuse a config whose training data came from stdin when no data is given now.

    Without this check the config (``train_path: null``) would silently train on the
    generated task instead.
    """
    if data.stdin is None or data.train_path is not None:
        return
    again = f"bilstm train --resume {resume} --data FILE" if resume else "--data FILE"
    raise UsageError(
        f"this run's training data came from standard input ({describe(data.stdin)}), which cannot be read again",
        f"pass the same data again: {again}, or --data - with it on stdin",
    )


def check_same_data(recorded: StdinData | None, found: StdinData, where: str) -> None:
    """Refuse data that differs from what the config recorded."""
    if recorded is None or recorded == found:
        return
    raise UsageError(
        f"{where} is not the data this config was trained on: {describe(found)}, expected {describe(recorded)}",
        "give the original data, or train on new data with --set data.stdin=null",
    )


def recorded_config(config: Config, found: StdinData | None) -> Config:
    """The config to save in the run directory: data from stdin replaced by its fingerprint."""
    if config.data.train_path != STDIN and config.data.stdin is None:
        return config
    saved = config.model_copy(deep=True)
    if config.data.train_path == STDIN:
        saved.data.train_path, saved.data.stdin = None, found
    else:  # the same data, from a file this time: the file is what a re-run reads
        saved.data.stdin = None
    return saved


def describe(record: StdinData) -> str:
    return f"{record.sequences} sequences, {record.steps} steps, sha256 {record.sha256[:12]}..."
