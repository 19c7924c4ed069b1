"""The evaluate command's tables: summary, per-step accuracy, confusion, per class, listing."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from .console import number


def print_evaluation(result, console: Console) -> None:
    """The evaluate command's tables: summary, per-step accuracy, confusion, per-class, listing."""
    evaluation = result.evaluation
    summary = Table(title=f"evaluation of {result.model.run.model_path}", title_justify="left", show_header=False)
    summary.add_row("data", result.source + (f" (seed {result.seed})" if result.seed is not None else ""))
    summary.add_row("sequences / labelled positions", f"{evaluation.sequences} / {evaluation.positions}")
    summary.add_row("loss", number(evaluation.loss))
    summary.add_row("accuracy", number(evaluation.accuracy))
    summary.add_row("macro F1", number(evaluation.scores.macro_f1))
    console.print(summary)

    if evaluation.per_step_accuracy:
        values = evaluation.per_step_accuracy
        stride = max(1, math.ceil(len(values) / 20))  # long sequences: every k-th step
        title = "accuracy per time step" + (f" (every {stride}th step)" if stride > 1 else "")
        steps = Table("step", "accuracy", title=title, title_justify="left")
        for step in range(0, len(values), stride):
            steps.add_row(str(step), number(values[step], 3))
        console.print(steps)

    names = evaluation.classes
    confusion = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
    confusion.add_column("")
    for name in names:
        confusion.add_column(name, justify="right")
    for name, row in zip(names, evaluation.confusion):
        confusion.add_row(name, *(str(v) for v in row))
    console.print(confusion)

    scores = evaluation.scores
    per_class = Table("class", "precision", "recall", "F1", "support", title="per class", title_justify="left")
    for i, name in enumerate(names):
        per_class.add_row(
            name,
            number(scores.precision[i], 3),
            number(scores.recall[i], 3),
            number(scores.f1[i], 3),
            str(scores.support[i]),
        )
    console.print(per_class)

    for example in result.listing:
        expected, predicted = example["expected"], example["predicted"]
        wrong = sum(e != p for e, p in zip(expected, predicted))
        indent = " " * (len(str(example["sequence"])) + 9)
        console.print(f"sequence {example['sequence']}  Expected:  {_label_cells(expected, expected + predicted)}")
        console.print(f"{indent}  Predicted: {_label_cells(predicted, expected + predicted)}  ({wrong} wrong)")


def _label_cells(values: list, all_values: list, shown: int = 40) -> str:
    """Labels in aligned columns; long sequences are cut after ``shown`` steps."""
    width = max(len(str(v)) for v in all_values)
    text = " ".join(f"{v:>{width}}" for v in values[:shown])
    return text + (" ..." if len(values) > shown else "")
