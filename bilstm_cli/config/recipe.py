"""The recipe for dataset files: the defaults used when training reads a file.

The built-in defaults were tuned for the generated task, where an "epoch" is 32 fresh
sequences and 3000 of them never overfit. A file is a different protocol: epochs pass over the
same series, so training needs a cap, a validation split and early stopping that keeps the
best weights, and real data needs a gentler learning rate, a wider model and standardised
inputs. These values were chosen on BasicMotions, ArrowHead, OSULeaf and JapaneseVowels
(`make bench-datasets`; the README has the table); other archive datasets are held out.

``train.refit`` (off here, see :mod:`bilstm_cli.config.refit`) lets the split choose the
number of epochs and then trains a fresh model on every training series for that many.

Only keys the user did not set take these values; they are written into the resolved config
(``bilstm config show --data FILE``, the run's config.yaml), so a run stays reproducible.
"""

from __future__ import annotations

from typing import Any

FILE_RECIPE: dict[str, Any] = {
    "data.standardize": True,  # +2 points on JapaneseVowels; BasicMotions never converged without it
    "data.validation_split": 0.2,  # stratified, only when there is no validation file
    "model.units": 64,  # 32 was 2x faster but worse on ArrowHead
    "model.pooling": "last",  # mean pooling varied widely with the seed on OSULeaf
    "train.epochs": 200,  # a cap: no run of the recipe reached it (the longest stopped at 183)
    "train.batch_size": 32,
    "train.learning_rate": 0.001,  # 0.003 (the generated task's) lost 9 points on BasicMotions
    "train.log_every": 1,  # early stopping looks at every epoch (costs about 5% of the time)
    "train.early_stopping.enabled": True,
    "train.early_stopping.patience": 20,  # 10 made ArrowHead's result depend on the seed
    "train.early_stopping.min_delta": 0.0,
    # small sets: a 20% split of a few dozen series is noisy; stopping at epoch 21 with a best
    # epoch of 1-2 lost to a plain 60-epoch Keras model (issue 23), so no stop before epoch 60
    "train.early_stopping.start_from": 60,
    # the refit (train again on every series for the chosen epochs) is measured but off: it lost
    # 0.19 on ArrowHead (0.611 -> 0.425, same validation phase) and 0.09 on 8 BasicMotions series
    # (README, "Your own data"); these are its settings with --set train.refit.enabled=true
    "train.refit.enabled": False,
    "train.refit.scale": 1.0,  # epochs, not steps: the validation phase's best epoch as it is
    "train.refit.min_epochs": 60,  # a best epoch of 1-2 on a tiny split is noise, not a choice
    # a 5-fold ensemble instead of one model and a 20% split: every series trains 4 of the 5
    # models, each stops on its own fold, and their average won where one model lost to the plain
    # fixed-epoch baseline (quarter ArrowHead, OSULeaf; README, "Small training sets")
    "train.folds": 5,
}


def file_recipe(
    explicit: set[str] | frozenset[str], has_validation_file: bool, wants_split: bool = False
) -> dict[str, Any]:
    """The recipe's values for the keys not in ``explicit`` (key paths the user gave).
    ``wants_split``: the user asked for a validation split (``data.validation_split`` > 0, or
    the refit, which uses one), so no folds.

    Example:
        >>> file_recipe({"model.units"}, has_validation_file=True)["train.epochs"]
        200
    """
    values = {path: value for path, value in FILE_RECIPE.items() if path not in explicit}
    if has_validation_file:  # a validation file is the validation data: no split, no folds
        values.pop("data.validation_split", None)
        values.pop("train.folds", None)
    if wants_split:
        values.pop("train.folds", None)
    return values


def wants_split(explicit: set[str] | frozenset[str], refit: Any, validation_split: Any) -> bool:
    """Whether the user's own settings ask for one model on a validation split: the refit
    turned on, or a split given (turning the refit off, or restating it, does not)."""
    asked_refit = "train.refit.enabled" in explicit and refit is True
    asked_split = (
        "data.validation_split" in explicit and isinstance(validation_split, (int, float)) and validation_split > 0
    )
    return asked_refit or asked_split
