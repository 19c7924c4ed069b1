"""Critical-difference diagram (Demšar 2006, figure 1): variants on an average-rank axis, best on the
right, with thick bars joining groups that are not significantly different. Drawn with matplotlib's
object API and written atomically as a PNG (no display needed, no pyplot global state)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..fileio import atomic

# Layout in inches: the figure is laid out on an axes whose data coordinates are inches from the
# top-left corner, so text, bars and rows keep their spacing whatever the number of variants.
AXIS_WIDTH = 5.0  # length of the rank axis
FONT_SIZE = 10
ROW_HEIGHT = 0.26  # vertical distance between name rows
BAR_GAP = 0.13  # vertical distance between clique bars
BAR_OVERHANG = 0.06  # bars stick out a little beyond their end variants, as in Demšar's figures
LINE_COLOUR = "#333333"
BAR_COLOUR = "#000000"


def plot_critical_difference(
    average_ranks: Mapping[str, float],
    cliques: Sequence[Sequence[str]],
    path: str | Path,
    title: str,
    note: str | None = None,
) -> None:
    """Draw the rank axis 1..k (rank 1 on the right), each variant's name joined to its average rank
    (worse half on the left, better half on the right), and a thick bar under each clique.

    Args:
        average_ranks: variant name -> average rank over the datasets (1 = best).
        cliques: groups of variant names that are not significantly different (``ranking.cliques``).
        path: PNG file to write (replaced atomically).
        title: title above the diagram.
        note: optional line under the diagram, e.g. which test and alpha the bars stand for.

    Raises:
        ValueError: fewer than two variants (there is nothing to compare), a non-finite rank, or a
            clique naming a variant that has no rank.

    Example:
        >>> plot_critical_difference(  # doctest: +SKIP
        ...     {"lstm": 2.6, "bilstm": 1.4, "gru": 2.0}, [["bilstm", "gru"]], "cd.png", "accuracy over 8 datasets"
        ... )
    """
    figure = critical_difference_figure(average_ranks, cliques, title, note)
    with atomic.atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")


def critical_difference_figure(
    average_ranks: Mapping[str, float], cliques: Sequence[Sequence[str]], title: str, note: str | None = None
):
    """The diagram as a matplotlib Figure (what :func:`plot_critical_difference` saves)."""
    if len(average_ranks) < 2:
        raise ValueError(f"a critical-difference diagram needs at least 2 variants, got {len(average_ranks)}")
    if not all(math.isfinite(rank) for rank in average_ranks.values()):
        raise ValueError("average ranks must be finite numbers")
    unknown = sorted({name for clique in cliques for name in clique} - set(average_ranks))
    if unknown:
        raise ValueError(f"cliques name variants without an average rank: {', '.join(unknown)}")

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    order = sorted(average_ranks, key=lambda name: average_ranks[name])  # best first
    n_variants = len(order)
    # the axis spans 1..k, or further if a rank lies outside (ranks from elsewhere, or rounding)
    lowest = min(1, math.floor(min(average_ranks.values())))
    highest = max(n_variants, math.ceil(max(average_ranks.values())))
    labels = {name: f"{name} ({average_ranks[name]:.2f})" for name in order}
    right_side = order[: n_variants // 2]  # the better half
    left_side = order[n_variants // 2 :][::-1]  # the worse half, worst first
    # each side is as wide as its longest label (measured, not guessed), plus room for the elbow
    label_widths = _text_widths_inches(list(labels.values()), FONT_SIZE)
    left_margin = 0.3 + max(label_widths[labels[name]] for name in left_side)
    right_margin = 0.3 + max(label_widths[labels[name]] for name in right_side)
    width = left_margin + AXIS_WIDTH + right_margin

    def x_of(rank: float) -> float:
        # rank 1 (best) on the right, as in Demšar's figures
        return left_margin + AXIS_WIDTH * (highest - rank) / (highest - lowest)

    title_height = 0.45 if title else 0.15
    axis_y = title_height + 0.3  # room for the tick labels above the axis
    bars_top = axis_y + 0.22
    bar_rows = _bar_rows(cliques, average_ranks)
    names_top = bars_top + BAR_GAP * max(len(bar_rows), 1) + 0.1
    rows = max(len(right_side), len(left_side))
    height = names_top + ROW_HEIGHT * (rows - 1) + 0.3 + (0.3 if note else 0.0)

    figure = Figure(figsize=(width, height), dpi=130)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)  # y grows downwards, like reading the figure
    axes.set_axis_off()

    if title:
        axes.text(width / 2, title_height / 2 + 0.05, title, ha="center", va="center", fontsize=FONT_SIZE + 1)

    # rank axis with a tick at every whole rank and a half-height tick at every half rank
    axes.plot([x_of(lowest), x_of(highest)], [axis_y, axis_y], color=LINE_COLOUR, linewidth=1.2)
    for step in range(2 * (highest - lowest) + 1):
        rank = lowest + step / 2
        whole = step % 2 == 0
        tick = 0.1 if whole else 0.05
        axes.plot([x_of(rank)] * 2, [axis_y - tick, axis_y], color=LINE_COLOUR, linewidth=1.0)
        if whole:
            axes.text(x_of(rank), axis_y - 0.14, f"{rank:g}", ha="center", va="bottom", fontsize=FONT_SIZE - 1)

    # each name hangs from its rank: down to its row, then out to its side of the figure
    for side, names in (("left", left_side), ("right", right_side)):
        for row, name in enumerate(names):
            x, y = x_of(average_ranks[name]), names_top + row * ROW_HEIGHT
            end = left_margin - 0.1 if side == "left" else width - right_margin + 0.1
            axes.plot([x, x, end], [axis_y, y, y], color=LINE_COLOUR, linewidth=0.9)
            axes.plot([x], [axis_y], marker="o", markersize=3, color=LINE_COLOUR)
            text_x = end - 0.05 if side == "left" else end + 0.05
            align = "right" if side == "left" else "left"
            axes.text(text_x, y, labels[name], ha=align, va="center", fontsize=FONT_SIZE)

    for row, (best_rank, worst_rank) in enumerate(bar_rows):
        y = bars_top + row * BAR_GAP
        axes.plot(
            [x_of(worst_rank) - BAR_OVERHANG, x_of(best_rank) + BAR_OVERHANG],
            [y, y],
            color=BAR_COLOUR,
            linewidth=4,
            solid_capstyle="round",
        )

    if note:
        axes.text(width / 2, height - 0.2, note, ha="center", va="center", fontsize=FONT_SIZE - 2, color="#555555")
    return figure


def _text_widths_inches(texts: list[str], font_size: float) -> dict[str, float]:
    """Rendered width of each text in inches, measured on a scratch figure with the same fonts."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scratch = Figure(figsize=(1, 1), dpi=100)
    renderer = FigureCanvasAgg(scratch).get_renderer()
    widths = {}
    for text in texts:
        artist = scratch.text(0, 0, text, fontsize=font_size)
        widths[text] = artist.get_window_extent(renderer).width / scratch.dpi
    return widths


def _bar_rows(cliques: Sequence[Sequence[str]], average_ranks: Mapping[str, float]) -> list[tuple[float, float]]:
    """(best rank, worst rank) of each clique with at least two variants, from the best clique down."""
    spans = [
        (min(average_ranks[name] for name in clique), max(average_ranks[name] for name in clique))
        for clique in cliques
        if len(clique) > 1
    ]
    return sorted(spans)
