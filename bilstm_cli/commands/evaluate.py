"""``bilstm evaluate``: score a saved model on a dataset or on fresh generated sequences."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import backend
from ..data.dataset import Dataset
from ..data.formats import source_label
from ..data.generator import cumulative_sum_task
from ..device import select_device
from ..errors import UsageError
from ..inference.loaded import LoadedModel, load_model_for_inference
from ..inference.metrics import Evaluation, MetricTotals, evaluate_predictions, predicted_classes
from ..runs.saved import locate_run
from ..seeds import draw_seed


@dataclass
class EvaluateResult:
    evaluation: Evaluation
    listing: list[dict]  # the tutorial's Expected/Predicted rows for the first --show sequences
    source: str
    seed: int | None
    model: LoadedModel

    def to_dict(self) -> dict:
        return {
            "model": str(self.model.run.model_path),
            "data": self.source,
            "seed": self.seed,
            **self.evaluation.to_dict(),
            "examples": self.listing,
        }


def run_evaluate(
    target: str,
    data_path: str | None,
    samples: int,
    seed: int | None,
    show: int,
    device: str = "auto",
    input_format: str | None = None,
    backend_name: str | None = None,
) -> EvaluateResult:
    """Evaluate ``target`` (run directory or .keras) on ``data_path`` or on fresh sequences.

    ``backend_name``: the Keras backend to run the model with (any backend can run a model
    trained under another); None = ``$BILSTM_BACKEND``, else TensorFlow.
    """
    backend.select(backend_name)
    if samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")
    if show < 0:
        raise UsageError(f"--show must be 0 or more, got {show}")
    run = locate_run(target)
    task = run.data_spec.get("task")
    # read (or draw) the data first: a bad file is reported before TensorFlow's slow import
    if data_path is not None:
        from ..data.streamed import open_large_file

        where = source_label(data_path)
        streamed = open_large_file(data_path, input_format, memory_budget(run), task)
        if streamed is not None:
            loaded = load_model_for_inference(run, select_device(device))
            return _evaluate_streamed(loaded, streamed, where, show)
        from ..data.io import read_dataset

        dataset = read_dataset(data_path, input_format, task=task)
        source, used_seed = where, None
    else:
        config = run.config
        if config is None:
            raise UsageError(
                f"{target}: no config.yaml beside the model, so the task to draw sequences from is unknown",
                "pass --data FILE",
            )
        used_seed = seed if seed is not None else draw_seed()
        data = config.data
        rng = np.random.default_rng(used_seed)
        dataset = cumulative_sum_task(samples, data.timesteps, data.threshold, rng, data.generated_task)
        where = "generated"
        source = f"{samples} fresh sequences (T={data.timesteps}, threshold={data.threshold})"
    loaded = load_model_for_inference(run, select_device(device))
    dataset = loaded.check(dataset, where)
    probabilities = loaded.predict(dataset)
    evaluation = evaluate_predictions(probabilities, dataset, loaded.num_classes)
    return EvaluateResult(
        evaluation, listing(dataset, probabilities, loaded.class_names(), show), source, used_seed, loaded
    )


def memory_budget(run) -> int:
    """The run's ``data.memory_limit`` (its default without a config)."""
    from ..limits import default_memory_limit

    return run.config.data.memory_budget if run.config is not None else default_memory_limit()


def _evaluate_streamed(loaded: LoadedModel, file, where: str, show: int) -> EvaluateResult:
    """Scores of a file larger than the memory budget, a chunk at a time."""
    totals, examples = MetricTotals(loaded.num_classes), []
    for index in range(len(file.chunks)):
        dataset = loaded.check(file.read(index), where)
        probabilities = loaded.predict(dataset, whole_batches=True)
        totals.add(probabilities, dataset)
        if len(examples) < show:
            examples += listing(dataset, probabilities, loaded.class_names(), show - len(examples), len(examples))
    return EvaluateResult(totals.evaluation(), examples, where, None, loaded)


def listing(dataset: Dataset, probabilities: np.ndarray, names: list[str], count: int, first: int = 0) -> list[dict]:
    """Expected vs predicted labels for the first ``count`` sequences (numbered from ``first``)."""
    rows = []
    for i in range(min(count, dataset.size)):
        length = int(dataset.lengths[i])
        predicted = predicted_classes(probabilities[i][:length] if dataset.y.ndim == 2 else probabilities[i][None])
        expected = dataset.y[i][:length] if dataset.y.ndim == 2 else dataset.y[i : i + 1]
        rows.append(
            {
                "sequence": first + i,
                "expected": [names[k] for k in expected],
                "predicted": [names[k] for k in predicted],
            }
        )
    return rows
