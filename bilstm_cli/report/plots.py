"""Matplotlib figures written as PNG files (no display needed, no pyplot global state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..fileio import atomic

TRAIN_COLOUR = "#9aa5b1"


def preload() -> None:
    """Import matplotlib's figure machinery now (about 0.5 s), e.g. in a background thread while
    a comparison trains, so the plots at its end do not wait for it."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401


def _figure(width: float, height: float, columns: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(1, columns)


def _save(figure, path: Path) -> None:
    with atomic.atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")


def plot_history(history, path: Path, title: str) -> None:
    """Loss and accuracy per epoch (training, faint) and at validation points (bold)."""
    figure, (loss_axis, accuracy_axis) = _figure(10, 4, columns=2)
    epochs = np.asarray(history.epoch)
    for axis, train_key, val_key, label in (
        (loss_axis, "loss", "val_loss", "loss (cross-entropy)"),
        (accuracy_axis, "accuracy", "val_accuracy", "accuracy"),
    ):
        train = np.asarray(getattr(history, train_key), dtype=float)
        axis.plot(epochs, train, color=TRAIN_COLOUR, linewidth=0.8, alpha=0.8, label="training (per epoch)")
        validation = np.asarray(getattr(history, val_key), dtype=float)
        logged = ~np.isnan(validation)
        if logged.any():
            axis.plot(
                epochs[logged],
                validation[logged],
                color="#1f77b4",
                linewidth=2,
                marker="o",
                markersize=3,
                label="validation",
            )
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(loc="best", fontsize=8)
    figure.suptitle(title)
    _save(figure, path)


def plot_comparison(curves: dict[str, dict[str, np.ndarray]], path: Path, title: str) -> None:
    """Mean validation loss per variant with a 95% band, raw training loss faintly behind.

    ``curves[variant]`` holds ``train`` (one ``(epochs, loss)`` pair per repeat), ``val_epochs``
    (V,), ``val_mean``, ``val_low``, ``val_high`` (V,).
    """
    figure, axis = _figure(9, 5)
    colours = [f"C{i}" for i in range(10)]
    for index, (variant, curve) in enumerate(curves.items()):
        colour = colours[index % len(colours)]
        for epochs, loss in curve["train"]:
            axis.plot(epochs, loss, color=colour, alpha=0.07, linewidth=0.6)
        axis.plot(curve["val_epochs"], curve["val_mean"], color=colour, linewidth=2, label=variant)
        if np.isfinite(curve["val_low"]).all():
            axis.fill_between(curve["val_epochs"], curve["val_low"], curve["val_high"], color=colour, alpha=0.2)
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation loss (mean, 95% CI); training loss faint")
    axis.grid(alpha=0.3)
    axis.legend(title="variant")
    axis.set_title(title)
    _save(figure, path)
