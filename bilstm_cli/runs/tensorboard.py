"""TensorBoard event files: every epoch's scores, so ``tensorboard --logdir runs/`` overlays runs.

Written with tensorboardX, not TensorFlow's ``tf.summary``: it needs neither TensorFlow nor
TensorBoard (only numpy and protobuf), so a JAX run writes events without importing
TensorFlow (3-6 s), the import costs about 0.1 s, and the same code serves every backend.
Reading the files needs TensorBoard itself (``pip install tensorboard``), which is not a
dependency.

One directory of event files is one run in TensorBoard. Scalars, step = epoch:

    loss, accuracy               every epoch (training, as in history.csv)
    val_loss, val_accuracy       at logged epochs (where history.csv has them)
    learning_rate                at logged epochs (the history's, where it has one)
    config (text)                the resolved config as YAML, at step 0

tensorboardX writes from a background thread; only :meth:`EventLog.close` guarantees that
everything queued is on disk (``flush`` does not), so writers are closed in ``finally``.
"""

from __future__ import annotations

import math
import os
import struct
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..fileio import atomic

SCALARS = ("loss", "accuracy", "val_loss", "val_accuracy")
LEARNING_RATE = "learning_rate"
CONFIG_TAG = "config"
EVENT_FILE_PATTERN = "events.out.tfevents.*"


class EventLog:
    """An open event file in ``directory``: write epochs as they come, then :meth:`close`.

    Args:
        directory: the run's folder of event files (created if missing).
        learning_rate: the optimizer's learning rate, recorded at logged epochs.
        resume_from_epoch: a resumed run's first new epoch minus one: what an earlier,
            interrupted process wrote after it (and a record it was killed in the middle of)
            is removed from the folder's files first (:func:`trim_events`), so the series
            continues with no epoch twice.

    Example:
        >>> events = EventLog(Path("runs/x/tensorboard"), learning_rate=0.003)  # doctest: +SKIP
        >>> events.write_config("train:\\n  epochs: 10\\n")  # doctest: +SKIP
        >>> events.write_epochs(history.to_dict())  # doctest: +SKIP
        >>> events.close()  # doctest: +SKIP
    """

    def __init__(self, directory: Path, learning_rate: float, resume_from_epoch: int = 0):
        SummaryWriter = _summary_writer_class()  # noqa: N806 - a class, imported by runs that write events only

        directory.mkdir(parents=True, exist_ok=True)
        if resume_from_epoch:
            trim_events(directory, resume_from_epoch)
        # the file name holds the time in whole seconds and the host: the pid keeps two
        # writers of one second apart (tensorboardX would truncate the first file)
        self._writer = SummaryWriter(str(directory), filename_suffix=f".{os.getpid()}")
        self.learning_rate = learning_rate
        self.written_epochs = resume_from_epoch  # the last epoch on disk (or queued)

    def write_config(self, config_yaml: str) -> None:
        """The resolved config as text (a YAML code block, so TensorBoard keeps its layout)."""
        self._writer.add_text(CONFIG_TAG, f"```yaml\n{config_yaml}```", 0)

    def write_epochs(self, history: dict[str, Sequence[Any]], until_epoch: int | None = None) -> None:
        """Write the epochs of ``history`` after the last one written, up to ``until_epoch``.

        Args:
            history: ``History.to_dict()``: lists ``epoch``, ``loss``, ``accuracy``,
                ``val_loss``, ``val_accuracy`` (NaN or None where not scored).
            until_epoch: the last epoch to write (default: all of ``history``).
        """
        for index, epoch in enumerate(history["epoch"]):
            epoch = int(epoch)
            if epoch <= self.written_epochs or (until_epoch is not None and epoch > until_epoch):
                continue
            for tag in SCALARS:
                value = history[tag][index]
                if _present(value):
                    self._writer.add_scalar(tag, float(value), epoch)
            if _present(history["val_loss"][index]):
                self._writer.add_scalar(LEARNING_RATE, _rate(history, index, self.learning_rate), epoch)
            self.written_epochs = epoch

    def close(self) -> None:
        """Write everything queued and close the file (safe to call twice)."""
        self._writer.close()


def trim_events(directory: Path, last_epoch: int) -> None:
    """Keep only the events of steps up to ``last_epoch`` in the folder's event files, and
    drop a truncated or corrupt tail (a writer killed mid-record); files are replaced atomically.

    An event file is a TFRecord stream: per record an 8-byte length, a 4-byte CRC of it, the
    ``Event`` protocol buffer and a 4-byte CRC of the data; kept records are copied unchanged.
    """
    _summary_writer_class()  # tensorboardX, imported without PyTorch
    from google.protobuf.message import DecodeError
    from tensorboardX.proto.event_pb2 import Event

    for path in directory.glob(EVENT_FILE_PATTERN):
        data = path.read_bytes()
        kept, position = [], 0
        while position + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[position : position + 8])
            end = position + 12 + length + 4
            if end > len(data):
                break  # the writer was killed in the middle of this record
            try:
                step = Event.FromString(data[position + 12 : end - 4]).step
            except DecodeError:
                break
            if step <= last_epoch:
                kept.append(data[position:end])
            position = end
        trimmed = b"".join(kept)
        if trimmed != data:
            atomic.write_bytes(path, trimmed)


def write_history_events(
    directory: Path,
    history: dict[str, Sequence[Any]],
    learning_rate: float,
    config_yaml: str,
    hparams: dict[str, str | float | bool] | None = None,
):
    """Write one finished run's history as one TensorBoard run (``compare``: one per repeat).

    Event files already in ``directory`` are removed first, so a run trained again (e.g. by
    ``compare --resume`` after an interruption) is not shown twice. The history is complete,
    so it is written synchronously, one event per epoch holding all its scalars: a comparison
    of 40 runs x 3000 epochs spends about a second here instead of the background queue's
    15 s of per-scalar hand-offs.

    Args:
        directory: the run's folder of event files, e.g. ``OUT/tensorboard/DATASET/VARIANT/repeat-001``.
        history: ``History.to_dict()`` (``epoch``, ``loss``, ``accuracy``, ``val_loss``,
            ``val_accuracy``; NaN or None where not scored; ``elapsed`` is not written).
        learning_rate: the run's optimizer learning rate.
        config_yaml: the run's resolved config.
        hparams: the run's settings for TensorBoard's HParams tab (filter and sort runs by
            them; its metrics are the run's own scalars, val_loss and val_accuracy). Written
            as the plugin's session start and end; TensorBoard infers the experiment from them.
    """
    if directory.is_dir():
        for stale in directory.glob(EVENT_FILE_PATTERN):
            stale.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    _summary_writer_class()  # tensorboardX, imported without PyTorch
    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.summary_pb2 import Summary
    from tensorboardX.summary import text

    now = time.time()
    writer = EventsWriter(str(directory / "events"), f".{os.getpid()}")
    try:
        writer.write_event(Event(wall_time=now, step=0, summary=text(CONFIG_TAG, f"```yaml\n{config_yaml}```")))
        if hparams:
            from tensorboardX.summary import hparams as hparams_summaries

            _, session_start, session_end = hparams_summaries(hparams, {"val_loss": None, "val_accuracy": None})
            writer.write_event(Event(wall_time=now, step=0, summary=session_start))
        for index, epoch in enumerate(history["epoch"]):
            values = [
                Summary.Value(tag=tag, simple_value=float(history[tag][index]))
                for tag in SCALARS
                if _present(history[tag][index])
            ]
            if _present(history["val_loss"][index]):
                values.append(Summary.Value(tag=LEARNING_RATE, simple_value=_rate(history, index, learning_rate)))
            writer.write_event(Event(wall_time=now, step=int(epoch), summary=Summary(value=values)))
        if hparams:
            writer.write_event(Event(wall_time=now, step=int(history["epoch"][-1]), summary=session_end))
    finally:
        writer.close()


def _rate(history: dict[str, Sequence[Any]], index: int, configured: float) -> float:
    """The epoch's learning rate from the history (schedules change it), else the configured one."""
    rates = history.get("learning_rate")
    value = rates[index] if rates is not None and index < len(rates) else None
    return float(value) if _present(value) else float(configured)


def _present(value: Any) -> bool:
    return value is not None and not math.isnan(value)


def _summary_writer_class():
    """tensorboardX's SummaryWriter, imported without PyTorch.

    tensorboardX imports PyTorch whenever it is installed (1.2 s of start-up here), only so it
    can accept torch tensors, which bilstm never passes: the import is hidden from it, unless
    PyTorch or tensorboardX is loaded already.
    """
    import sys

    if "torch" in sys.modules or "tensorboardX" in sys.modules:
        from tensorboardX import SummaryWriter

        return SummaryWriter
    sys.modules["torch"] = None  # while set, `import torch` raises ImportError
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter
