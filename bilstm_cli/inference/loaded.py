"""A saved model ready to score or predict: load it, check input against it, run it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.dataset import PER_STEP, SEQUENCE, Dataset
from ..data.labels import align_labels
from ..device import DeviceInfo
from ..engine import for_backend
from ..errors import DataError, ModelError, first_line
from ..runs.saved import SavedRun


@dataclass
class LoadedModel:
    run: SavedRun
    model: object
    device: DeviceInfo
    features: int
    task: str
    num_classes: int
    classes: list[str] | None
    _predictor: object = field(default=None, repr=False)  # the compiled call, made once

    def check(self, dataset: Dataset, where: str) -> Dataset:
        """Refuse input the model cannot take; express labels in the model's codes."""
        if dataset.features != self.features:
            raise DataError(
                f"{where}: {dataset.features} feature(s) per step, but the model was trained on {self.features}",
                "give data with the same features as the training data",
            )
        if dataset.y is not None and dataset.task != self.task:
            from ..data.io import task_mismatch

            raise DataError(f"{where}: {task_mismatch(dataset.task, self.task)}")
        return align_labels(dataset, self.classes, self.num_classes, where)

    def predict(self, dataset: Dataset, batch_size: int = 1024, whole_batches: bool = False) -> np.ndarray:
        """Probabilities: ``(N, T, 1|C)`` per step or ``(N, 1|C)`` per sequence.

        ``whole_batches``: always ``batch_size`` sequences per call, even for fewer sequences
        (the chunks of a streamed file then share one compiled program)."""
        if self._predictor is None:
            self._predictor = for_backend().predictor(self.model, self.device)
        size = batch_size if whole_batches else max(1, min(batch_size, dataset.size))
        return predict_in_batches(self._predictor, dataset.x, dataset.lengths, size)

    def class_names(self) -> list[str]:
        """A name for every output class (numbers where the training data had no names)."""
        names = list(self.classes or [])
        return names + [str(k) for k in range(len(names), self.num_classes)]


def load_model_for_inference(run: SavedRun, device: DeviceInfo) -> LoadedModel:
    """Load a located run's model on ``device``; errors name the file and the problem."""
    from ..model.build import load_model

    try:
        with for_backend().placed(device):
            model = load_model(str(run.model_path))
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad archive
        raise ModelError(
            f"{run.model_path} is not a loadable Keras model ({type(exc).__name__}: {first_line(exc)})"
        ) from None
    inputs = model.inputs
    if len(inputs) != 2:
        raise ModelError(f"{run.model_path} was not made by bilstm (expected inputs x and lengths)")
    features = int(inputs[0].shape[-1])
    output_rank = len(model.output_shape)
    spec = run.data_spec
    task = spec.get("task") or (PER_STEP if output_rank == 3 else SEQUENCE)
    width = int(model.output_shape[-1])
    num_classes = int(spec.get("num_classes") or (2 if width == 1 else width))
    return LoadedModel(run, model, device, features, task, num_classes, spec.get("classes"))


def predict_in_batches(call, x: np.ndarray, lengths: np.ndarray, batch_size: int) -> np.ndarray:
    """Run ``call(x, lengths)`` over fixed-size batches (the last one padded) and join them.

    One batch shape means one compiled program, whatever the number of sequences.
    """
    count = x.shape[0]
    outputs = []
    for start in range(0, count, batch_size):
        part_x = x[start : start + batch_size]
        part_lengths = lengths[start : start + batch_size].astype(np.int32)
        real = part_x.shape[0]
        if real < batch_size:
            part_x = np.concatenate([part_x, np.zeros((batch_size - real, *part_x.shape[1:]), part_x.dtype)])
            part_lengths = np.concatenate([part_lengths, np.ones(batch_size - real, np.int32)])
        outputs.append(np.asarray(call(part_x, part_lengths))[:real])
    return np.concatenate(outputs)
