"""``bilstm predict``: per-step (or per-sequence) probabilities and classes for new input."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import numpy as np

from .. import backend
from ..data.dataset import PER_STEP
from ..data.formats import source_label
from ..device import select_device
from ..inference.loaded import load_model_for_inference
from ..inference.metrics import predicted_classes
from ..runs.saved import locate_run


def run_predict(
    target: str,
    input_path: str,
    output_format: str = "csv",
    device: str = "auto",
    input_format: str | None = None,
    backend_name: str | None = None,
) -> Iterator[str]:
    """Predict for every sequence of ``input_path`` (``-`` = stdin): CSV or JSONL text, in parts
    (a file larger than the run's ``data.memory_limit`` is read, predicted and written a chunk at
    a time, so memory stays bounded; ``"".join`` the parts for the whole text).

    ``backend_name``: the Keras backend to run the model with; None = ``$BILSTM_BACKEND``, else
    TensorFlow.

    ``sequence`` is the input's own id (CSV) or the sequence's position (other formats).
    CSV columns: ``sequence,step,class,probability`` for binary models (probability of class
    1, or of the sequence's label per sequence) and ``sequence,step,class,p_<name>...`` for
    several classes; per-sequence models have no ``step`` column.
    """
    from ..data.io import read_dataset
    from ..data.streamed import open_large_file
    from .evaluate import memory_budget

    backend.select(backend_name)
    run = locate_run(target)
    where = source_label(input_path)
    # read the input first: a bad file is reported before TensorFlow's slow import
    streamed = open_large_file(input_path, input_format, memory_budget(run), require_labels=False)
    if streamed is None:
        datasets = iter([read_dataset(input_path, input_format, require_labels=False)])
    else:
        datasets = (streamed.read(index) for index in range(len(streamed.chunks)))
    first = next(datasets)
    loaded = load_model_for_inference(run, select_device(device))
    for number, dataset in enumerate(itertools.chain([first], datasets)):
        dataset.y = None  # labels in the input are ignored, and need not be known to the model
        loaded.check(dataset, where)
        yield _predictions(loaded, dataset, output_format, header=number == 0, whole_batches=streamed is not None)


def _predictions(loaded, dataset, output_format: str, header: bool, whole_batches: bool) -> str:
    probabilities = loaded.predict(dataset, whole_batches=whole_batches)
    names = loaded.class_names()
    # a class is printed as the training data named it: a number (JSON: a number) where the
    # labels were class numbers, its name where they were names
    labels = names if loaded.classes is not None else list(range(loaded.num_classes))
    if loaded.task == PER_STEP:
        mask = dataset.step_mask()
        sequence_index, step_index = np.nonzero(mask)
        flat = probabilities[mask]
    else:
        sequence_index = np.arange(dataset.size)
        step_index = None
        flat = probabilities
    classes = np.asarray(labels, dtype=object)[predicted_classes(flat)]
    binary = flat.shape[-1] == 1
    ids = dataset.ids or list(range(dataset.size))  # the input's own sequence ids where it has them
    if output_format == "jsonl":
        return _jsonl(ids, sequence_index, classes, flat, labels, binary, step_index is not None)
    return _csv(ids, sequence_index, step_index, classes, flat, names, binary, header)


def _csv(ids, sequence_index, step_index, classes, flat, names, binary, header: bool = True) -> str:
    import pandas as pd  # its C writer: ~5x Python's csv module (100M rows for 10M sequences)

    columns = {"sequence": np.asarray(ids, dtype=object)[sequence_index]}
    if step_index is not None:
        columns["step"] = step_index
    columns["class"] = classes
    probability_columns = ["probability"] if binary else [f"p_{name}" for name in names]
    for column, name in enumerate(probability_columns):
        columns[name] = flat[:, column]
    return pd.DataFrame(columns).to_csv(index=False, header=header, float_format="%.6f", lineterminator="\n")


def _jsonl(ids, sequence_index, classes, flat, names, binary, per_step) -> str:
    lines = []
    bounds = np.searchsorted(sequence_index, np.arange(len(ids) + 1))  # rows are grouped by sequence
    for i in range(len(ids)):
        rows = range(bounds[i], bounds[i + 1])
        probability = [
            round(float(p[0]), 6) if binary else [round(float(v), 6) for v in p]
            for p in flat[bounds[i] : bounds[i + 1]]
        ]
        record = {"sequence": ids[i], "class": [classes[r] for r in rows], "probability": probability}
        if not per_step:
            record = {"sequence": ids[i], "class": record["class"][0], "probability": record["probability"][0]}
        if not binary:
            record["classes"] = names
        lines.append(json.dumps(record, separators=(",", ":")))
    return "\n".join(lines) + "\n"
