"""``bilstm generate``: write the tutorial's task to a file or stdout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config.schema import Config
from ..data.generator import cumulative_sum_task
from ..data.io import write_dataset
from ..errors import UsageError
from ..limits import GIB, MAX_GENERATED_BYTES
from ..seeds import draw_seed

# Refuse to allocate more than this for generated data (an absurd --samples/--timesteps).


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
    needed = samples * data.timesteps * (4 + 8) * 2  # x float32 + labels int64, plus the cumsum
    if needed > MAX_GENERATED_BYTES:
        raise UsageError(
            f"{samples} sequences x {data.timesteps} steps needs about {needed / GIB:.0f} GiB; refusing",
            "generate fewer sequences or shorter ones, or in several files",
        )
    seed = data.seed if data.seed is not None else draw_seed()
    dataset = cumulative_sum_task(
        samples, data.timesteps, data.threshold, np.random.default_rng(seed), data.generated_task
    )
    used_format = write_dataset(dataset, output, fmt)
    return GenerateResult(samples, data.timesteps, seed, output, used_format, _one_class(dataset.y, data))


def _one_class(labels: np.ndarray, data) -> str | None:
    """A warning when every label is the same: nothing to learn (e.g. the sequence task's final
    label at the default threshold: a sum of T uniforms almost always passes T/4)."""
    values = np.unique(labels)
    if len(values) > 1 or labels.size < 20:
        return None
    hint = " (for --task sequence, --threshold 0.5 gives both classes about equally)" if labels.ndim == 1 else ""
    return f"every label is {int(values[0])} at --threshold {data.threshold:g}: a model has nothing to learn{hint}"
