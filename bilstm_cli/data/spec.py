"""What the data dictates about a model (no TensorFlow import, so data code can use it)."""

from __future__ import annotations

from dataclasses import dataclass

from .dataset import PER_STEP


@dataclass(frozen=True)
class ModelSpec:
    """Input width, number of classes and label kind of a model.

    Args:
        features: values per time step.
        num_classes: 2 for binary labels (a sigmoid head), C > 2 for a softmax head.
        task: ``per-step`` (a label per time step) or ``sequence`` (one label per sequence).
    """

    features: int
    num_classes: int
    task: str = PER_STEP

    @property
    def binary(self) -> bool:
        return self.num_classes <= 2
