"""Comparing variants across many datasets: average ranks, the Friedman test (with the Iman–Davenport
F correction), pairwise Wilcoxon signed-rank tests with Holm's correction, and the groups of variants
that a critical-difference diagram joins with a bar.

This is the protocol of Demšar (JMLR 2006) with the post-hoc test recommended by Benavoli, Corani &
Mangili (JMLR 2016): pairwise Wilcoxon-Holm instead of Nemenyi, because the outcome of a
mean-rank test between two variants depends on which *other* variants happen to be in the comparison.

``scores`` is always an (n_datasets, k_variants) array of one number per dataset and variant (say
mean validation accuracy), and ranks are 1 = best.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from .paired import ALPHA, holm, scipy_stats, underpowered


@dataclass
class RankTable:
    """Ranks of each variant on each dataset and their means (1 = best; ties share the average rank)."""

    mean: np.ndarray  # (k,) average rank per variant
    matrix: np.ndarray  # (N, k) rank of each variant on each dataset


@dataclass
class FriedmanResult:
    """Friedman's test that all variants have the same average rank, with the Iman–Davenport F form.

    ``reason`` is set (and every statistic is NaN) when the test cannot be computed at all.
    """

    chi2: float
    p_value: float  # chi-square approximation, k - 1 degrees of freedom
    f_statistic: float  # Iman–Davenport F_F; infinite when every dataset ranks the variants identically
    f_df: tuple[int, int]  # (k - 1, (k - 1)(N - 1))
    f_p_value: float  # the p-value to use (the chi-square form is known to be too conservative)
    n_datasets: int
    n_variants: int
    average_ranks: np.ndarray
    reason: str | None = None

    def significant(self, alpha: float = ALPHA) -> bool:
        """True when the Iman–Davenport test rejects "all variants rank the same" at ``alpha``."""
        return self.reason is None and self.f_p_value < alpha


@dataclass
class PairwiseResult:
    """Two-sided Wilcoxon signed-rank test between variants ``a`` and ``b`` over the datasets."""

    a: str
    b: str
    p: float | None  # None with fewer than 2 datasets (no test)
    p_holm: float | None  # Holm-adjusted over all k(k-1)/2 pairs
    significant: bool
    better: str | None  # the side the signed ranks lean to (whether or not significant); None if even
    wins_a: int = 0  # datasets where a beats b
    wins_b: int = 0
    ties: int = 0


@dataclass
class CrossDatasetComparison:
    """Everything ``compare_across_datasets`` computes, ready for a report or a diagram."""

    names: list[str]
    ranks: RankTable
    friedman: FriedmanResult
    pairwise: list[PairwiseResult]
    cliques: list[list[str]]
    verdict: str
    average_ranks: dict[str, float] = field(default_factory=dict)


def _score_matrix(scores) -> np.ndarray:
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"scores must be a 2-D (datasets, variants) array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("scores contain NaN or infinite values; drop or fill those datasets first")
    return array


def average_ranks(scores, higher_is_better: bool) -> RankTable:
    """Rank the variants on each dataset (1 = best, ties get the average rank) and average the ranks.

    Args:
        scores: (n_datasets, k_variants) array, one score per dataset and variant.
        higher_is_better: True for accuracy-like scores, False for losses and error rates.

    Example:
        >>> average_ranks([[0.9, 0.8, 0.8], [0.7, 0.9, 0.6]], higher_is_better=True).mean.tolist()
        [1.5, 1.75, 2.75]
    """
    array = _score_matrix(scores)
    # rankdata ranks ascending; negate so the best score gets rank 1 either way
    oriented = -array if higher_is_better else array
    matrix = scipy_stats().rankdata(oriented, axis=1) if array.size else np.zeros(array.shape)
    mean = matrix.mean(axis=0) if array.shape[0] else np.full(array.shape[1], math.nan)
    return RankTable(mean=mean, matrix=matrix)


def friedman(scores, higher_is_better: bool) -> FriedmanResult:
    """Friedman's chi-square on ranks (Demšar 2006, eq. for chi2_F) and the Iman–Davenport F_F.

    chi2_F = 12N / (k(k+1)) * (sum_j R_j**2 - k(k+1)**2 / 4) with R_j the average ranks, and
    F_F = (N-1) chi2_F / (N(k-1) - chi2_F) on (k-1, (k-1)(N-1)) degrees of freedom.

    This is the uncorrected statistic of the paper; ``scipy.stats.friedmanchisquare`` divides by a
    tie correction, so the two agree exactly only when no dataset has tied scores.

    Args:
        scores: (n_datasets, k_variants) array.
        higher_is_better: direction of the scores.

    Example:
        >>> result = friedman([[3, 2, 1], [3, 1, 2], [3, 2, 1]], higher_is_better=True)
        >>> round(result.chi2, 4), result.f_df
        (4.6667, (2, 4))
    """
    array = _score_matrix(scores)
    n_datasets, n_variants = array.shape
    if n_variants < 2 or n_datasets < 2:
        nan = math.nan
        return FriedmanResult(
            chi2=nan,
            p_value=nan,
            f_statistic=nan,
            f_df=(max(n_variants - 1, 0), max((n_variants - 1) * (n_datasets - 1), 0)),
            f_p_value=nan,
            n_datasets=n_datasets,
            n_variants=n_variants,
            average_ranks=average_ranks(array, higher_is_better).mean,
            reason=f"needs at least 2 variants and 2 datasets, got {n_variants} and {n_datasets}",
        )
    ranks = average_ranks(array, higher_is_better).mean
    k, n = n_variants, n_datasets
    chi2 = 12 * n / (k * (k + 1)) * (float(np.sum(ranks**2)) - k * (k + 1) ** 2 / 4)
    chi2 = max(chi2, 0.0)  # rounding can leave -1e-15 when every rank is equal
    df_between, df_within = k - 1, (k - 1) * (n - 1)
    denominator = n * (k - 1) - chi2
    if denominator <= 1e-12 * n * (k - 1):
        # chi2 reaches its maximum N(k-1) when every dataset orders the variants identically (no ties):
        # F_F is infinite and its p-value is 0, the strongest possible evidence of a difference
        f_statistic, f_p_value = math.inf, 0.0
    else:
        f_statistic = (n - 1) * chi2 / denominator
        f_p_value = float(scipy_stats().f.sf(f_statistic, df_between, df_within))
    return FriedmanResult(
        chi2=chi2,
        p_value=float(scipy_stats().chi2.sf(chi2, df_between)),
        f_statistic=f_statistic,
        f_df=(df_between, df_within),
        f_p_value=f_p_value,
        n_datasets=n,
        n_variants=k,
        average_ranks=ranks,
    )


def _signed_rank_direction(differences: np.ndarray) -> float:
    """Sum of signed ranks of |differences| (zeros ranked then dropped, as Pratt): > 0 leans to a."""
    ranks = scipy_stats().rankdata(np.abs(differences))
    return float(np.sum(np.sign(differences) * ranks))


def wilcoxon_holm(scores, names: Sequence[str], higher_is_better: bool, alpha: float = ALPHA) -> list[PairwiseResult]:
    """Two-sided Wilcoxon signed-rank test for every pair of variants, Holm-adjusted over all pairs.

    Datasets where two variants score exactly the same are kept in the ranking and then dropped
    (``zero_method="pratt"``) rather than discarded up front (scipy's default "wilcox"): a tie is
    evidence for "no difference" (Demšar 2006, section 3.1.3), and throwing ties away overstates the
    evidence when many datasets are solved equally well. If every difference is zero, p = 1.

    Args:
        scores: (n_datasets, k_variants) array.
        names: the k variant names, in column order.
        higher_is_better: direction of the scores.
        alpha: family-wise significance level for ``significant``.

    Example:
        >>> pairs = wilcoxon_holm([[0.9, 0.8]] * 6, ["bilstm", "lstm"], higher_is_better=True)
        >>> pairs[0].p, pairs[0].better, pairs[0].significant
        (0.03125, 'bilstm', True)
    """
    array = _score_matrix(scores)
    names = list(names)
    if len(names) != array.shape[1]:
        raise ValueError(f"{len(names)} names for {array.shape[1]} variant columns")
    if len(set(names)) != len(names):
        raise ValueError("variant names must be unique")
    # orient so that a positive difference always means "the first variant did better"
    oriented = array if higher_is_better else -array
    pairs = list(combinations(range(len(names)), 2))
    p_values: list[float | None] = []
    directions: list[float] = []
    for i, j in pairs:
        differences = oriented[:, i] - oriented[:, j]
        directions.append(_signed_rank_direction(differences))
        if differences.size < 2:
            p_values.append(None)
        elif np.all(differences == 0):
            p_values.append(1.0)  # scipy returns NaN here; identical results are no evidence of a difference
        else:
            pair = oriented[:, i], oriented[:, j]
            result = scipy_stats().wilcoxon(*pair, zero_method="pratt", alternative="two-sided")
            p_values.append(float(result.pvalue))
    adjusted = holm(p_values)
    results = []
    for (i, j), p, p_holm, direction in zip(pairs, p_values, adjusted, directions):
        differences = oriented[:, i] - oriented[:, j]
        better = names[i] if direction > 0 else names[j] if direction < 0 else None
        results.append(
            PairwiseResult(
                a=names[i],
                b=names[j],
                p=p,
                p_holm=p_holm,
                significant=p_holm is not None and p_holm < alpha,
                better=better,
                wins_a=int(np.sum(differences > 0)),
                wins_b=int(np.sum(differences < 0)),
                ties=int(np.sum(differences == 0)),
            )
        )
    return results


def cliques(
    average_ranks: Mapping[str, float], pairwise: Sequence[PairwiseResult], alpha: float = ALPHA
) -> list[list[str]]:
    """Groups of variants with no significant difference among them, as bars on a CD diagram.

    Variants are sorted by average rank; a clique is a maximal contiguous run (in that order) in
    which no pair has a Holm-adjusted p below ``alpha``. Runs of one variant and runs contained in
    another are dropped. (aeon's ``plot_critical_difference`` only checks each run's first variant
    against the rest; this checks every pair, so a bar never joins two variants that differ.)

    Args:
        average_ranks: variant name -> average rank (1 = best).
        pairwise: results of ``wilcoxon_holm`` covering the pairs of these variants; a missing pair
            or one without a p-value counts as not significantly different.
        alpha: significance level applied to ``p_holm``.

    Example:
        >>> ranks = {"a": 1.2, "b": 2.0, "c": 2.8}
        >>> pairs = [PairwiseResult("a", "c", 0.01, 0.03, True, "a")]
        >>> cliques(ranks, pairs)
        [['a', 'b'], ['b', 'c']]
    """
    order = sorted(average_ranks, key=lambda name: average_ranks[name])
    different = {frozenset((pair.a, pair.b)) for pair in pairwise if pair.p_holm is not None and pair.p_holm < alpha}
    runs: list[list[str]] = []
    for start in range(len(order)):
        end = start + 1
        # extend while the next variant differs from none already in the run
        while end < len(order) and not any(frozenset((order[end], member)) in different for member in order[start:end]):
            end += 1
        run = order[start:end]
        # runs are contiguous and their ends never move left, so a run is contained in another exactly
        # when it ends where the previous (longer-or-equal, earlier-starting) run ended
        if len(run) > 1 and not (runs and runs[-1][-1] == run[-1]):
            runs.append(run)
    return runs


def min_datasets_for_significance(n_comparisons: int = 1, alpha: float = ALPHA) -> int:
    """The fewest datasets for which ``n_comparisons`` Holm/Bonferroni-adjusted Wilcoxon tests can reach p < alpha.

    The smallest exact two-sided p with N datasets is 2 / 2**N, and Holm multiplies the smallest p by
    the number of comparisons.

    Example:
        >>> min_datasets_for_significance(1), min_datasets_for_significance(6)
        (6, 8)
    """
    n = 1
    while n_comparisons * 2 / 2**n >= alpha:
        n += 1
    return n


def verdict_across_datasets(
    names: Sequence[str],
    friedman_result: FriedmanResult,
    pairwise: Sequence[PairwiseResult],
    alpha: float = ALPHA,
) -> str:
    """One sentence that claims no more than the Friedman and Wilcoxon-Holm tests support.

    Args:
        names: variant names in the column order of the scores.
        friedman_result: ``friedman`` on the same scores.
        pairwise: ``wilcoxon_holm`` on the same scores.
        alpha: significance level.

    Example:
        >>> result = friedman([[0.9, 0.8]] * 3, higher_is_better=True)
        >>> verdict_across_datasets(["bilstm", "lstm"], result, [])[:60]
        'bilstm has the best average rank (1.00), but with 3 datasets'
    """
    names = list(names)
    n, k = friedman_result.n_datasets, friedman_result.n_variants
    if k < 2:
        return f"only one variant ({names[0] if names else 'none'}); nothing to compare"
    if n == 0:
        return "no datasets; nothing to compare"
    ranks = friedman_result.average_ranks
    best_index = int(np.argmin(ranks))
    best, best_rank = names[best_index], float(ranks[best_index])
    tied = [name for name, rank in zip(names, ranks) if name != best and math.isclose(rank, best_rank)]
    lead = f"{best} has the best average rank ({best_rank:.2f}{', tied with ' + ', '.join(tied) if tied else ''})"
    needed_for_one_test = min_datasets_for_significance(1, alpha)
    if n < needed_for_one_test:
        advice = f"no difference can be claimed with fewer than {needed_for_one_test} datasets"
        return underpowered(lead, n, "dataset" if n == 1 else "datasets", needed_for_one_test, advice, alpha)
    if not friedman_result.significant(alpha):
        return (
            f"no variant is distinguishable over {n} datasets (Friedman/Iman–Davenport "
            f"F = {friedman_result.f_statistic:.3g}, p = {friedman_result.f_p_value:.3g}); "
            f"{best}'s best average rank ({best_rank:.2f}) may be noise"
        )
    friedman_text = f"Friedman/Iman–Davenport p = {friedman_result.f_p_value:.3g}"
    worse, better_than_best, indistinguishable = [], [], []
    for name in sorted((name for name in names if name != best), key=lambda name: ranks[names.index(name)]):
        pair = next((pair for pair in pairwise if {pair.a, pair.b} == {best, name}), None)
        if pair is None or not pair.significant:
            indistinguishable.append(name)
        elif pair.better == best:
            worse.append(f"{name} (p_Holm = {pair.p_holm:.3g})")
        else:  # possible: average ranks and signed ranks weigh datasets differently
            better_than_best.append(f"{name} (p_Holm = {pair.p_holm:.3g})")
    if not worse and not better_than_best:
        needed = min_datasets_for_significance(k * (k - 1) // 2, alpha)
        power = f"; with {k} variants Holm needs at least {needed} datasets" if n < needed else ""
        return (
            f"{lead} and the variants differ ({friedman_text}), but {best} is not significantly different from "
            f"any other variant after Holm-corrected Wilcoxon tests over {n} datasets{power}"
        )
    text = f"{lead} over {n} datasets ({friedman_text})"
    clauses = []
    if worse:
        clauses.append(f"it is significantly better than {', '.join(worse)}")
    if better_than_best:
        clauses.append(f"yet pairwise it is significantly worse than {', '.join(better_than_best)}")
    if indistinguishable:
        clauses.append(f"it is not distinguishable from {', '.join(indistinguishable)}")
    return f"{text}; " + "; ".join(clauses)


def compare_across_datasets(
    scores, names: Sequence[str], higher_is_better: bool, alpha: float = ALPHA
) -> CrossDatasetComparison:
    """Run the whole protocol: ranks, Friedman, pairwise Wilcoxon-Holm, cliques and the verdict.

    Args:
        scores: (n_datasets, k_variants) array.
        names: the k variant names, in column order.
        higher_is_better: direction of the scores.
        alpha: significance level.

    Example:
        >>> result = compare_across_datasets([[0.9, 0.8]] * 6, ["bilstm", "lstm"], higher_is_better=True)
        >>> result.cliques, result.pairwise[0].significant
        ([], True)
    """
    names = list(names)
    ranks = average_ranks(scores, higher_is_better)
    friedman_result = friedman(scores, higher_is_better)
    pairwise = wilcoxon_holm(scores, names, higher_is_better, alpha)
    mean_ranks = {name: float(rank) for name, rank in zip(names, ranks.mean)}
    return CrossDatasetComparison(
        names=names,
        ranks=ranks,
        friedman=friedman_result,
        pairwise=pairwise,
        cliques=cliques(mean_ranks, pairwise, alpha),
        verdict=verdict_across_datasets(names, friedman_result, pairwise, alpha),
        average_ranks=mean_ranks,
    )
