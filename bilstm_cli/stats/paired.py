"""Statistics of paired repeats on one task: t-based confidence intervals, paired Wilcoxon tests with Holm's
correction, learning-curve summaries. SciPy does the distributions and the test."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
ALPHA = 0.05
MIN_REPEATS_FOR_TEST = 6  # below this, a two-sided Wilcoxon test cannot reach p < 0.05


@dataclass
class Interval:
    mean: float
    low: float  # NaN when there is a single value
    high: float


def scipy_stats():
    """``scipy.stats``, imported on first use: it takes ~0.5 s, and ``compare`` loads this module
    (for its constants) before it starts its worker processes."""
    from scipy import stats

    return stats


def underpowered(lead: str, pairs: int, unit: str, needed: int, advice: str, alpha: float = ALPHA) -> str:
    """The verdict when too few pairs (repeats, datasets) exist for any two-sided Wilcoxon test to
    reach ``alpha`` (its smallest p with N pairs is 2 / 2**N): the one wording for every table.

    Example:
        >>> underpowered("sum ranks first", 5, "repeats", 6, "use --repeats 6")[:70]
        'sum ranks first, but with 5 repeats the Wilcoxon test cannot reach p <'
    """
    return f"{lead}, but with {pairs} {unit} the Wilcoxon test cannot reach p < {alpha:g} (underpowered); {advice}"


def mean_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """Mean with a two-sided t-based confidence interval (NaN bounds for one value).

    Example:
        >>> round(mean_interval([1.0, 2.0, 3.0]).high, 4)
        4.4841
    """
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if array.size < 2:
        return Interval(mean, math.nan, math.nan)
    half = float(scipy_stats().t.ppf((1 + confidence) / 2, array.size - 1) * array.std(ddof=1) / math.sqrt(array.size))
    return Interval(mean, mean - half, mean + half)


def wilcoxon_p(first, second) -> float | None:
    """Two-sided p-value of the paired Wilcoxon signed-rank test; None for fewer than 2 pairs.

    Identical pairs (all differences zero) give p = 1: no evidence of a difference.
    """
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.size < 2:
        return None
    if np.all(a == b):
        return 1.0
    return float(scipy_stats().wilcoxon(a, b, alternative="two-sided").pvalue)


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None entries are kept as None)."""
    indexed = [(p, i) for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(indexed)):
        running = max(running, min(1.0, (len(indexed) - rank) * p))
        adjusted[i] = running
    return adjusted


def area_under_curve(epochs, values) -> float:
    """Mean of a curve over the epochs it spans (trapezoid area / span); lower loss = faster."""
    x, y = np.asarray(epochs, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if x.size == 1:
        return float(y[0])
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def epochs_to_threshold(epochs, accuracies, threshold: float) -> int | None:
    """First logged epoch whose validation accuracy reaches ``threshold``; None if never."""
    for epoch, accuracy in zip(epochs, accuracies):
        if accuracy >= threshold:
            return int(epoch)
    return None


def median_epochs(reached: list[int | None]) -> float | None:
    """Median epochs to threshold, counting 'not reached' as infinitely late (None if the
    median itself was not reached)."""
    values = sorted(math.inf if r is None else r for r in reached)
    median = float(np.median(values)) if values else math.inf
    return None if math.isinf(median) or math.isnan(median) else median
