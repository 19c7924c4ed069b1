"""``bilstm generate``: write the tutorial's task to a file or stdout."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config.schema import Config
from ..data.block_writer import BLOCKWISE_FORMATS, write_blocks
from ..data.dataset import Dataset
from ..data.formats import STDIN, format_from_name
from ..data.generator import cumulative_sum_task
from ..data.io import write_dataset
from ..errors import UsageError
from ..limits import GIB, MAX_GENERATED_BYTES
from ..seeds import draw_seed

# Files in BLOCKWISE_FORMATS are drawn and written this many sequences at a time (one Parquet
# row group each), so their size is bounded by the disk, not by memory. The file is the same
# as drawing everything at once: the blocks' draws continue one random stream.
BLOCK_SEQUENCES = 65_536
BYTES_PER_STEP = (4 + 8) * 2  # x float32 + labels int64, plus the cumsum


@dataclass
class GenerateResult:
    samples: int
    timesteps: int
    seed: int
    path: str
    fmt: str
    warning: str | None = None


def run_generate(config: Config, samples: int, output: str, fmt: str | None) -> GenerateResult:
    """Generate ``samples`` sequences of the configured task and write them to ``output``."""
    if samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")
    data = config.data
    blockwise = _writes_blockwise(output, fmt)
    # refuse (before allocating anything) what would not fit in memory: everything at once,
    # or one block for the formats written block by block
    held = min(samples, BLOCK_SEQUENCES) if blockwise else samples
    needed = held * data.timesteps * BYTES_PER_STEP
    if needed > MAX_GENERATED_BYTES:
        what = f"each block of {held} sequences" if blockwise else f"{samples} sequences"
        raise UsageError(
            f"{what} x {data.timesteps} steps needs about {needed / GIB:.0f} GiB; refusing",
            "generate fewer sequences or shorter ones, or in several files",
        )
    seed = data.seed if data.seed is not None else draw_seed()
    rng = np.random.default_rng(seed)
    if blockwise:
        used_format = format_from_name(output, fmt)
        labels = _LabelsSeen()
        write_blocks(labels.watch(_blocks(samples, data, rng)), output, used_format)
        warning = _one_class_warning(labels.values, labels.count, labels.per_sequence, data)
        return GenerateResult(samples, data.timesteps, seed, output, used_format, warning)
    dataset = cumulative_sum_task(samples, data.timesteps, data.threshold, rng, data.generated_task)
    used_format = write_dataset(dataset, output, fmt)
    return GenerateResult(samples, data.timesteps, seed, output, used_format, _one_class(dataset.y, data))


def _writes_blockwise(output: str, fmt: str | None) -> bool:
    """Whether ``output`` is a file in one of BLOCKWISE_FORMATS (stdout and a folder, which
    write_dataset refuses, go the one-shot way)."""
    if output == STDIN or Path(output).is_dir():
        return False
    return format_from_name(output, fmt) in BLOCKWISE_FORMATS


def _blocks(samples: int, data, rng: np.random.Generator) -> Iterator[Dataset]:
    """The task's ``samples`` sequences, BLOCK_SEQUENCES at a time, all drawn from ``rng``:
    the same numbers as one ``cumulative_sum_task(samples, ...)`` (it draws nothing but the
    ``(n, T)`` uniforms, and a Generator's draws continue across calls)."""
    for start in range(0, samples, BLOCK_SEQUENCES):
        count = min(BLOCK_SEQUENCES, samples - start)
        yield cumulative_sum_task(count, data.timesteps, data.threshold, rng, data.generated_task)


class _LabelsSeen:
    """The label values and label count of the blocks that pass through :meth:`watch`."""

    def __init__(self) -> None:
        self.values: np.ndarray = np.empty(0, dtype=np.int64)
        self.count = 0
        self.per_sequence = False

    def watch(self, blocks: Iterator[Dataset]) -> Iterator[Dataset]:
        for block in blocks:
            self.values = np.union1d(self.values, np.unique(block.y))
            self.count += block.y.size
            self.per_sequence = block.y.ndim == 1
            yield block


def _one_class(labels: np.ndarray, data) -> str | None:
    """A warning when every label is the same: nothing to learn (e.g. the sequence task's final
    label at the default threshold: a sum of T uniforms almost always passes T/4)."""
    return _one_class_warning(np.unique(labels), labels.size, labels.ndim == 1, data)


def _one_class_warning(values: np.ndarray, count: int, per_sequence: bool, data) -> str | None:
    """:func:`_one_class` from the distinct label ``values`` and the number of labels."""
    if len(values) > 1 or count < 20:
        return None
    hint = " (for --task sequence, --threshold 0.5 gives both classes about equally)" if per_sequence else ""
    return f"every label is {int(values[0])} at --threshold {data.threshold:g}: a model has nothing to learn{hint}"
