"""Metrics from predicted probabilities: loss, accuracy, per-step accuracy, confusion matrix,
per-class precision/recall/F1. NumPy only, so they are easy to test against hand values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.dataset import PER_STEP, Dataset

EPSILON = 1e-7  # Keras' clipping of probabilities in cross-entropy


def positions_view(probabilities: np.ndarray, dataset: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten to labelled positions: ``(probabilities (M, K), labels (M,), step index (M,))``.

    Per-step models contribute every real step, sequence models one position per sequence.
    ``K`` is 1 for a binary (sigmoid) model, C for softmax.
    """
    if dataset.task == PER_STEP:
        mask = dataset.step_mask()
        steps = np.broadcast_to(np.arange(dataset.timesteps), mask.shape)[mask]
        return probabilities[mask], dataset.y[mask], steps
    return probabilities, dataset.y, np.zeros(dataset.size, dtype=np.int64)


def predicted_classes(probabilities: np.ndarray) -> np.ndarray:
    """Class per position: probability > 0.5 for sigmoid outputs, argmax for softmax."""
    if probabilities.shape[-1] == 1:
        return (probabilities[..., 0] > 0.5).astype(np.int64)
    return probabilities.argmax(axis=-1).astype(np.int64)


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    clipped = np.clip(probabilities.astype(np.float64), EPSILON, 1 - EPSILON)
    if clipped.shape[-1] == 1:
        p = clipped[..., 0]
        return -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    return -np.log(np.take_along_axis(clipped, labels[..., None], axis=-1)[..., 0])


@dataclass
class ClassScores:
    precision: list[float]
    recall: list[float]
    f1: list[float]
    support: list[int]

    @property
    def macro_f1(self) -> float:
        return float(np.mean(self.f1)) if self.f1 else float("nan")


@dataclass
class Evaluation:
    """Scores of a model on labelled sequences."""

    sequences: int
    positions: int
    loss: float
    accuracy: float
    per_step_accuracy: list[float]
    confusion: list[list[int]]
    classes: list[str]
    scores: ClassScores

    def to_dict(self) -> dict:
        return {
            "sequences": self.sequences,
            "positions": self.positions,
            "loss": self.loss,
            "accuracy": self.accuracy,
            "per_step_accuracy": self.per_step_accuracy,
            "confusion_matrix": {"labels": self.classes, "rows_true_columns_predicted": self.confusion},
            "per_class": {
                name: {"precision": p, "recall": r, "f1": f, "support": s}
                for name, p, r, f, s in zip(
                    self.classes, self.scores.precision, self.scores.recall, self.scores.f1, self.scores.support
                )
            },
            "macro_f1": self.scores.macro_f1,
        }


def evaluate_predictions(probabilities: np.ndarray, dataset: Dataset, num_classes: int) -> Evaluation:
    """All metrics for ``probabilities`` (the model's outputs) against ``dataset``'s labels."""
    totals = MetricTotals(num_classes)
    totals.add(probabilities, dataset)
    return totals.evaluation()


class MetricTotals:
    """Sums the metrics need, added a part of the data at a time (a streamed file's chunks)."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.sequences = self.positions = self.correct = 0
        self.loss = 0.0
        self.per_step: tuple[np.ndarray, np.ndarray] | None = None  # hits and positions by step
        self.confusion = np.zeros((num_classes, num_classes), np.int64)
        self.classes: list[str] | None = None

    def add(self, probabilities: np.ndarray, dataset: Dataset) -> None:
        flat, labels, steps = positions_view(probabilities, dataset)
        predicted = predicted_classes(flat)
        correct = predicted == labels
        if dataset.task == PER_STEP:
            hits = np.bincount(steps, weights=correct, minlength=dataset.timesteps)
            totals = np.bincount(steps, minlength=dataset.timesteps)
            if self.per_step is not None:  # parts may be padded to different lengths
                hits, totals = _add(hits, self.per_step[0]), _add(totals, self.per_step[1])
            self.per_step = (hits, totals)
        self.confusion += confusion_matrix(labels, predicted, self.num_classes)
        self.sequences += dataset.size
        self.positions += int(labels.size)
        self.correct += int(correct.sum())
        self.loss += float(cross_entropy(flat, labels).sum())
        self.classes = dataset.classes if dataset.classes else [str(k) for k in range(self.num_classes)]

    def evaluation(self) -> Evaluation:
        per_step = []
        if self.per_step is not None:
            per_step = [float(h / t) if t else float("nan") for h, t in zip(*self.per_step)]
        positions = max(self.positions, 1)
        return Evaluation(
            sequences=self.sequences,
            positions=self.positions,
            loss=self.loss / positions,
            accuracy=self.correct / positions,
            per_step_accuracy=per_step,
            confusion=self.confusion.tolist(),
            classes=list(self.classes or [str(k) for k in range(self.num_classes)]),
            scores=class_scores(self.confusion),
        )


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two 1-D arrays added, the shorter one padded with zeros."""
    width = max(len(a), len(b))
    return np.pad(a, (0, width - len(a))) + np.pad(b, (0, width - len(b)))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns."""
    index = labels.astype(np.int64) * num_classes + predicted.astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def class_scores(confusion: np.ndarray) -> ClassScores:
    """Precision, recall and F1 per class (0 where undefined, as scikit-learn's zero_division=0)."""
    true_positive = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, actual, out=np.zeros_like(true_positive), where=actual > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return ClassScores(precision.tolist(), recall.tolist(), f1.tolist(), actual.astype(int).tolist())
