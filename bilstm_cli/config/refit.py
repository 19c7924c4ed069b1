"""The refit: choose the number of epochs on the validation split, then train again on all
the training sequences for that many epochs (``train.refit``).

A small training set loses a fifth of its sequences to the validation split; early stopping
needs them to choose when to stop, the final model does not. The refit trains a fresh model
(same seed) on every training sequence, without validation, for ``best epoch x scale`` epochs
(at least ``min_epochs``), and that model is the run's.
"""

from __future__ import annotations

from .schema import Config


def refit_applies(config: Config) -> bool:
    """Whether a run refits: ``train.refit.enabled`` with early stopping on a validation split
    of the training file (a validation file is not training data: nothing to give back)."""
    data = config.data
    return (
        config.train.refit.enabled
        and config.train.early_stopping.enabled
        and data.train_path is not None
        and data.val_path is None
        and data.validation_split > 0
    )


def refit_epochs(config: Config, best_epoch: int | None, epochs_run: int) -> int:
    """The refit's epochs: the validation phase's best epoch (its last one when it saw no
    best) x ``train.refit.scale``, rounded, at least ``train.refit.min_epochs``.

    Example:
        >>> refit_epochs(Config(), 40, 60)
        40
    """
    refit = config.train.refit
    chosen = best_epoch if best_epoch is not None else epochs_run
    return max(refit.min_epochs, round(chosen * refit.scale))


def refit_config(config: Config, epochs: int) -> Config:
    """The config the refit trains with: every training sequence, ``epochs`` epochs, no
    validation and no early stopping; all else (model, seed, optimizer) as the run's."""
    refit = config.model_copy(deep=True)
    refit.data.validation_split = 0.0
    refit.train.epochs = epochs
    refit.train.early_stopping.enabled = False
    if refit.train.schedule == "plateau":  # lowered on validation loss, which the refit has not
        refit.train.schedule = "constant"
    return refit
