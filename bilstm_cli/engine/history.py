"""Training histories: every epoch's scores, and the logged rows shown while training."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class LogRecord:
    """One logged row: the window's mean training loss/accuracy and the validation score."""

    epoch: int
    loss: float
    accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    elapsed: float
    learning_rate: float = math.nan  # the rate of the row's last optimizer step


@dataclass
class History:
    """Every epoch's training loss/accuracy and learning rate (the rate its last optimizer step
    used); validation at logged epochs (NaN elsewhere)."""

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    elapsed: list[float] = field(default_factory=list)

    COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "elapsed")

    def __len__(self) -> int:
        return len(self.epoch)

    def rows(self) -> list[tuple]:
        return list(zip(*(getattr(self, name) for name in self.COLUMNS)))

    def truncate(self, epochs: int) -> History:
        return History(*(list(getattr(self, name)[:epochs]) for name in self.COLUMNS))

    def to_dict(self) -> dict[str, list]:
        return {name: list(getattr(self, name)) for name in self.COLUMNS}

    @classmethod
    def from_dict(cls, data: dict[str, list]) -> History:
        # checkpoints written before the learning rate was recorded have no such column
        unknown = [math.nan] * len(data["epoch"])
        return cls(*(list(data.get(name, unknown)) for name in cls.COLUMNS))

    @classmethod
    def mean(cls, histories: list[History]) -> History:
        """A k-fold ensemble's history: at each epoch, the mean of the members that trained it
        (members stop apart), its largest elapsed time and its first member's rate."""
        longest = max(histories, key=len)
        merged = cls(epoch=list(longest.epoch))
        for index in range(len(longest)):
            ran = [history for history in histories if len(history) > index]
            for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
                values = [getattr(history, name)[index] for history in ran]
                values = [value for value in values if value is not None and not math.isnan(value)]  # JSON: null
                getattr(merged, name).append(sum(values) / len(values) if values else math.nan)
            merged.learning_rate.append(ran[0].learning_rate[index])
            merged.elapsed.append(max(history.elapsed[index] for history in ran))
        return merged

    def logged(self) -> list[int]:
        """Indices of epochs with a validation score."""
        return validation_points({"val_loss": self.val_loss})


def validation_points(history: dict[str, list]) -> list[int]:
    """Indices of the epochs with a validation score in a saved history (JSON: NaN is null)."""
    return [i for i, value in enumerate(history["val_loss"]) if value is not None and not math.isnan(value)]
