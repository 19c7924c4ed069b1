"""Ranks, Friedman, Wilcoxon-Holm, cliques and verdicts across datasets, against Demšar (2006), hand
computations and SciPy; and the critical-difference diagram."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bilstm_cli.report.cd_diagram import critical_difference_figure, plot_critical_difference
from bilstm_cli.stats import ranking
from bilstm_cli.stats.paired import holm
from bilstm_cli.stats.ranking import (
    PairwiseResult,
    average_ranks,
    cliques,
    compare_across_datasets,
    friedman,
    min_datasets_for_significance,
    verdict_across_datasets,
    wilcoxon_holm,
)

# ----------------------------------------------------------------------------- Demšar (2006), Table 6

DEMSAR_NAMES = ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]
# AUC of four C4.5 variants on 14 UCI datasets, as printed (three decimals)
DEMSAR_AUC = np.array(
    [
        [0.763, 0.768, 0.771, 0.798],  # adult (sample)
        [0.599, 0.591, 0.590, 0.569],  # breast cancer
        [0.954, 0.971, 0.968, 0.967],  # breast cancer wisconsin
        [0.628, 0.661, 0.654, 0.657],  # cmc
        [0.882, 0.888, 0.886, 0.898],  # ionosphere
        [0.936, 0.931, 0.916, 0.931],  # iris
        [0.661, 0.668, 0.609, 0.685],  # liver disorders
        [0.583, 0.583, 0.563, 0.625],  # lung cancer
        [0.775, 0.838, 0.866, 0.875],  # lymphography
        [1.000, 1.000, 1.000, 1.000],  # mushroom
        [0.940, 0.962, 0.965, 0.962],  # primary tumor
        [0.619, 0.666, 0.614, 0.669],  # rheum
        [0.972, 0.981, 0.975, 0.975],  # voting
        [0.957, 0.978, 0.946, 0.970],  # wine
    ]
)
# the ranks the paper prints in parentheses; its average-rank row is their column means
DEMSAR_PAPER_RANKS = np.array(
    [
        [4, 3, 2, 1],
        [1, 2, 3, 4],
        [4, 1, 2, 3],
        [4, 1, 3, 2],
        [4, 2, 3, 1],
        [1, 2.5, 4, 2.5],
        [3, 2, 4, 1],
        [2.5, 2.5, 4, 1],
        [4, 3, 2, 1],
        [2.5, 2.5, 2.5, 2.5],
        [4, 2.5, 1, 2.5],
        [3, 2, 4, 1],
        [4, 1, 2, 3],  # voting: 0.975 and 0.975 printed, yet ranked 2 and 3 (unrounded AUCs differ)
        [3, 1, 4, 2],
    ]
)
VOTING = 12


def demsar_auc_as_ranked_in_the_paper() -> np.ndarray:
    """The printed table with voting's C4.5+cf nudged above C4.5+m+cf, as the paper's ranks say it was."""
    auc = DEMSAR_AUC.copy()
    auc[VOTING, 2] = 0.9751
    return auc


def test_printed_table_gives_the_papers_ranks_except_the_rounded_voting_tie():
    table = average_ranks(DEMSAR_AUC, higher_is_better=True)
    other_rows = np.arange(14) != VOTING
    np.testing.assert_array_equal(table.matrix[other_rows], DEMSAR_PAPER_RANKS[other_rows])
    # the printed values tie on voting, so ties share rank 2.5 and two averages move by 0.5 / 14
    np.testing.assert_array_equal(table.matrix[VOTING], [4, 1, 2.5, 2.5])
    np.testing.assert_allclose(table.mean, [44 / 14, 28 / 14, 41 / 14, 27 / 14])


def test_demsar_worked_example_average_ranks_friedman_and_iman_davenport():
    for scores, higher_is_better in (
        (demsar_auc_as_ranked_in_the_paper(), True),
        (DEMSAR_PAPER_RANKS, False),  # the ranks themselves, read as "lower is better"
    ):
        result = friedman(scores, higher_is_better)
        np.testing.assert_allclose(result.average_ranks, [3.143, 2.000, 2.893, 1.964], atol=5e-4)
        assert result.chi2 == pytest.approx(9.28, abs=5e-3)  # exactly 9.2786 from unrounded ranks
        assert result.f_statistic == pytest.approx(3.69, abs=5e-3)
        assert result.f_df == (3, 39)
        assert (result.n_datasets, result.n_variants) == (14, 4)
        # the paper: "the critical value of F(3, 39) for alpha = 0.05 is 2.85, so we reject the null-hypothesis"
        assert scipy_stats.f.ppf(0.95, 3, 39) == pytest.approx(2.85, abs=5e-3)
        assert result.f_statistic > 2.85 and result.f_p_value < 0.05 and result.significant()
        assert result.f_p_value == pytest.approx(scipy_stats.f.sf(result.f_statistic, 3, 39))
        assert result.p_value == pytest.approx(scipy_stats.chi2.sf(result.chi2, 3))


def test_scipy_divides_by_a_tie_correction_that_the_papers_formula_leaves_out():
    # Table 6 has ties: iris (2 tied), lung cancer (2), mushroom (4), primary tumor (2), so
    # sum(t**3 - t) = 6 + 6 + 60 + 6 = 78 and the correction is 1 - 78 / (N k (k**2 - 1)) = 1 - 78/840.
    ours = friedman(demsar_auc_as_ranked_in_the_paper(), higher_is_better=True)
    theirs = scipy_stats.friedmanchisquare(*demsar_auc_as_ranked_in_the_paper().T)
    assert theirs.statistic == pytest.approx(ours.chi2 / (1 - 78 / 840))
    assert theirs.statistic > ours.chi2 + 0.9  # 10.228 vs 9.279: not a rounding difference


# ----------------------------------------------------------------------------- a small hand-made table

# 6 datasets x 3 variants (higher is better), no ties within any dataset
HAND_NAMES = ["A", "B", "C"]
HAND_SCORES = np.array(
    [
        [0.80, 0.75, 0.70],  # ranks 1 2 3
        [0.82, 0.78, 0.79],  # 1 3 2
        [0.70, 0.72, 0.65],  # 2 1 3
        [0.90, 0.85, 0.80],  # 1 2 3
        [0.60, 0.62, 0.58],  # 2 1 3
        [0.77, 0.74, 0.76],  # 1 3 2
    ]
)


def test_hand_table_ranks_friedman_and_iman_davenport():
    # rank sums 8, 12, 16 -> average ranks 4/3, 2, 8/3
    table = average_ranks(HAND_SCORES, higher_is_better=True)
    np.testing.assert_allclose(table.mean, [4 / 3, 2, 8 / 3])
    np.testing.assert_array_equal(table.matrix[1], [1, 3, 2])
    # chi2_F = 12*6/(3*4) * ((16/9 + 4 + 64/9) - 3*16/4) = 6 * (80/9 + 4 - 12) = 6 * 8/9 = 16/3
    # F_F = (6-1)(16/3) / (6*2 - 16/3) = (80/3) / (20/3) = 4 on (2, 10) degrees of freedom
    result = friedman(HAND_SCORES, higher_is_better=True)
    assert result.chi2 == pytest.approx(16 / 3)
    assert result.p_value == pytest.approx(math.exp(-8 / 3))  # chi-square with 2 df: sf(x) = exp(-x/2)
    assert result.f_statistic == pytest.approx(4.0)
    assert result.f_df == (2, 10)
    assert result.f_p_value == pytest.approx(0.0529221, abs=1e-6)  # F(2, 10) upper tail at 4: just above 0.05
    assert not result.significant(0.05) and result.significant(0.10)


def test_without_ties_the_papers_formula_equals_scipy():
    scipy_result = scipy_stats.friedmanchisquare(*HAND_SCORES.T)
    ours = friedman(HAND_SCORES, higher_is_better=True)
    assert ours.chi2 == pytest.approx(scipy_result.statistic)
    assert ours.p_value == pytest.approx(scipy_result.pvalue)
    random_scores = np.random.default_rng(7).normal(size=(11, 5))  # continuous: no ties
    assert friedman(random_scores, True).chi2 == pytest.approx(scipy_stats.friedmanchisquare(*random_scores.T)[0])


def test_lower_is_better_is_the_mirror_image():
    up = friedman(HAND_SCORES, higher_is_better=True)
    down = friedman(-HAND_SCORES, higher_is_better=False)
    np.testing.assert_allclose(down.average_ranks, up.average_ranks)
    assert down.chi2 == pytest.approx(up.chi2)
    np.testing.assert_allclose(average_ranks(HAND_SCORES, higher_is_better=False).mean, [8 / 3, 2, 4 / 3])


def test_ties_share_the_average_rank():
    table = average_ranks([[0.9, 0.8, 0.8, 0.7], [0.5, 0.5, 0.5, 0.5]], higher_is_better=True)
    np.testing.assert_array_equal(table.matrix, [[1, 2.5, 2.5, 4], [2.5, 2.5, 2.5, 2.5]])
    np.testing.assert_allclose(table.mean, [1.75, 2.5, 2.5, 3.25])


# ----------------------------------------------------------------------------- degenerate inputs


def test_identical_order_on_every_dataset_makes_f_infinite_not_a_crash():
    scores = np.array([[3.0, 2.0, 1.0]] * 7) + np.arange(7)[:, None]  # same order, different levels
    result = friedman(scores, higher_is_better=True)
    assert result.chi2 == pytest.approx(7 * 2)  # its maximum, N(k-1)
    assert result.f_statistic == math.inf and result.f_p_value == 0.0
    assert result.significant() and result.reason is None


def test_all_variants_equal_everywhere_gives_no_evidence():
    result = friedman(np.full((8, 3), 0.5), higher_is_better=True)
    assert result.chi2 == 0.0 and result.f_statistic == 0.0
    assert result.p_value == 1.0 and result.f_p_value == 1.0 and not result.significant()


@pytest.mark.parametrize("shape", [(10, 1), (1, 4), (0, 3)])
def test_too_few_variants_or_datasets_is_explicit(shape):
    result = friedman(np.ones(shape), higher_is_better=True)
    assert result.reason is not None and "at least 2" in result.reason
    assert math.isnan(result.chi2) and math.isnan(result.f_p_value)
    assert not result.significant()


@pytest.mark.parametrize("bad", [[0.1, 0.2, 0.3], [[0.1, math.nan], [0.2, 0.3]], [[0.1, math.inf], [0.2, 0.3]]])
def test_bad_score_arrays_are_refused(bad):
    with pytest.raises(ValueError):
        friedman(bad, higher_is_better=True)
    with pytest.raises(ValueError):
        wilcoxon_holm(bad, ["a", "b", "c"][: np.asarray(bad).shape[-1]], higher_is_better=True)


def test_names_must_match_the_columns_and_be_unique():
    with pytest.raises(ValueError, match="names"):
        wilcoxon_holm(HAND_SCORES, ["A", "B"], higher_is_better=True)
    with pytest.raises(ValueError, match="unique"):
        wilcoxon_holm(HAND_SCORES, ["A", "A", "B"], higher_is_better=True)


# ----------------------------------------------------------------------------- Wilcoxon with Holm


def test_min_datasets_is_where_a_two_sided_wilcoxon_can_first_reach_005():
    # every difference positive is the most extreme outcome: p = 2 / 2**N
    assert scipy_stats.wilcoxon(np.arange(1.0, 6.0)).pvalue == pytest.approx(0.0625)  # N = 5: cannot reach 0.05
    assert scipy_stats.wilcoxon(np.arange(1.0, 7.0)).pvalue == pytest.approx(0.03125)  # N = 6: can
    assert min_datasets_for_significance(1, 0.05) == 6
    # Holm over the 6 pairs of 4 variants multiplies the smallest p by 6: 6 * 2 / 2**7 > 0.05, 6 * 2 / 2**8 < 0.05
    assert min_datasets_for_significance(6, 0.05) == 8


def test_pairwise_p_values_holm_and_direction_by_hand():
    # A > B > C on all 6 datasets: each raw p = 2 / 2**6 = 0.03125, Holm over 3 pairs -> 0.09375 each
    scores = np.array([[3.0, 2.0, 1.0]] * 6) + np.arange(6)[:, None] * 0.1
    results = wilcoxon_holm(scores, ["A", "B", "C"], higher_is_better=True)
    assert [(r.a, r.b) for r in results] == [("A", "B"), ("A", "C"), ("B", "C")]
    for result in results:
        assert result.p == pytest.approx(0.03125) and result.p_holm == pytest.approx(0.09375)
        assert not result.significant and result.better == result.a
        assert (result.wins_a, result.wins_b, result.ties) == (6, 0, 0)
    # the same with 8 datasets: 3 * 2 / 2**8 = 0.0234 < 0.05, all significant
    eight = np.array([[3.0, 2.0, 1.0]] * 8)
    assert all(r.significant and r.p_holm == pytest.approx(3 * 2 / 2**8) for r in wilcoxon_holm(eight, "ABC", True))


def test_holm_is_applied_over_all_pairs_with_the_shared_holm():
    results = wilcoxon_holm(DEMSAR_AUC, DEMSAR_NAMES, higher_is_better=True)
    assert len(results) == 6
    raw = [r.p for r in results]
    assert [r.p_holm for r in results] == pytest.approx(holm(raw))
    # the smallest raw p (C4.5 vs C4.5+m, 0.0108) times 6 pairs
    smallest = min(results, key=lambda r: r.p)
    assert (smallest.a, smallest.b) == ("C4.5", "C4.5+m")
    # 14 datasets with 2 ties (lung cancer, mushroom): scipy's normal approximation, where each way of
    # treating zeros gives a slightly different p; pratt is the one used
    a, b = DEMSAR_AUC[:, 0], DEMSAR_AUC[:, 1]
    assert smallest.p == pytest.approx(scipy_stats.wilcoxon(a, b, zero_method="pratt").pvalue, rel=1e-9)
    for other in ("wilcox", "zsplit"):
        assert smallest.p != pytest.approx(scipy_stats.wilcoxon(a, b, zero_method=other).pvalue, rel=1e-4)
    assert smallest.p_holm == pytest.approx(6 * smallest.p)
    assert not any(r.significant for r in results)  # with 14 datasets, no pair survives Holm at 0.05


def test_lower_is_better_flips_which_is_better():
    scores = np.array([[0.2, 0.5]] * 6)  # losses: the first variant is lower every time
    (loss,) = wilcoxon_holm(scores, ["bilstm", "lstm"], higher_is_better=False)
    (accuracy,) = wilcoxon_holm(scores, ["bilstm", "lstm"], higher_is_better=True)
    assert loss.better == "bilstm" and accuracy.better == "lstm"
    assert loss.p == accuracy.p == pytest.approx(0.03125)


def test_ties_are_ranked_then_dropped_pratt_not_discarded():
    # differences 2, -1, 6, -2, 4, 7, 0, 0, 5 (integers: no floating-point near-ties)
    differences = np.array([2.0, -1.0, 6.0, -2.0, 4.0, 7.0, 0.0, 0.0, 5.0])
    scores = np.column_stack([10 + differences, np.full(9, 10.0)])
    (result,) = wilcoxon_holm(scores, ["a", "b"], higher_is_better=True)
    pratt = scipy_stats.wilcoxon(scores[:, 0], scores[:, 1], zero_method="pratt").pvalue
    discard = scipy_stats.wilcoxon(scores[:, 0], scores[:, 1], zero_method="wilcox").pvalue
    assert result.p == pytest.approx(pratt) == pytest.approx(0.125)
    assert discard == pytest.approx(0.09375)  # scipy's default would claim more evidence
    assert (result.wins_a, result.wins_b, result.ties) == (5, 2, 2)


def test_all_differences_zero_gives_p_one_and_too_few_datasets_gives_none():
    (same,) = wilcoxon_holm(np.full((7, 2), 0.9), ["a", "b"], higher_is_better=True)
    assert same.p == 1.0 and same.p_holm == 1.0 and same.better is None and same.ties == 7
    (single,) = wilcoxon_holm([[0.9, 0.8]], ["a", "b"], higher_is_better=True)
    assert single.p is None and single.p_holm is None and not single.significant


# ----------------------------------------------------------------------------- cliques


def _pairs(significant: set[tuple[str, str]], names: str) -> list[PairwiseResult]:
    """All pairs of ``names``; those in ``significant`` get p_holm 0.01, the rest 0.5."""
    results = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            p = 0.01 if (a, b) in significant or (b, a) in significant else 0.5
            results.append(PairwiseResult(a, b, p, p, p < 0.05, a))
    return results


FIVE_RANKS = {"E": 4.6, "C": 2.9, "A": 1.2, "D": 3.5, "B": 2.1}  # deliberately not in rank order


def test_cliques_on_a_constructed_case():
    # rank order A B C D E; significant: A-C, A-D, A-E, B-E, C-E. Runs: from A: A B (A-C differs);
    # from B: B C D (B-E differs); from C: C D (inside B C D, dropped); from D: D E; from E: E (one, dropped)
    pairs = _pairs({("A", "C"), ("A", "D"), ("A", "E"), ("B", "E"), ("C", "E")}, "ABCDE")
    assert cliques(FIVE_RANKS, pairs, alpha=0.05) == [["A", "B"], ["B", "C", "D"], ["D", "E"]]


def test_a_bar_never_joins_two_variants_that_differ():
    # A-B and A-C are not different but B-C is: A B C cannot be one bar (aeon would draw it)
    pairs = _pairs({("B", "C")}, "ABC")
    assert cliques({"A": 1.0, "B": 2.0, "C": 3.0}, pairs) == [["A", "B"]]


def test_cliques_extremes_and_alpha():
    ranks = {"A": 1.0, "B": 2.0, "C": 3.0}
    assert cliques(ranks, _pairs(set(), "ABC")) == [["A", "B", "C"]]
    every_pair = _pairs({("A", "B"), ("A", "C"), ("B", "C")}, "ABC")
    assert cliques(ranks, every_pair) == []
    assert cliques(ranks, every_pair, alpha=0.001) == [["A", "B", "C"]]  # 0.01 is not below 0.001
    assert cliques(ranks, []) == [["A", "B", "C"]]  # no test, no evidence of a difference
    untested = [PairwiseResult("A", "C", None, None, False, None)]
    assert cliques(ranks, untested) == [["A", "B", "C"]]


# ----------------------------------------------------------------------------- verdicts


def test_verdict_underpowered_below_six_datasets():
    scores = np.array([[0.9, 0.8, 0.7]] * 5)  # the clearest possible result, but only 5 datasets
    result = compare_across_datasets(scores, ["bilstm", "lstm", "gru"], higher_is_better=True)
    assert result.friedman.significant()  # Friedman alone would call it
    assert "underpowered" in result.verdict and "fewer than 6" in result.verdict
    assert result.verdict.startswith("bilstm has the best average rank (1.00)")
    assert "underpowered" not in compare_across_datasets(np.array([[0.9, 0.8, 0.7]] * 6), "ABC", True).verdict


def test_verdict_not_significant_on_the_hand_table():
    result = compare_across_datasets(HAND_SCORES, HAND_NAMES, higher_is_better=True)
    assert result.verdict.startswith("no variant is distinguishable over 6 datasets")
    assert "p = 0.0529" in result.verdict and "A's best average rank (1.33) may be noise" in result.verdict


def test_verdict_significant_names_the_best_and_who_is_worse():
    # 10 datasets: A best everywhere; B and C trade places (B ahead on 6, C on 4)
    rows = [[0.9, 0.8, 0.7]] * 6 + [[0.9, 0.7, 0.8]] * 4
    scores = np.array(rows) + np.arange(10)[:, None] * 0.001
    result = compare_across_datasets(scores, ["A", "B", "C"], higher_is_better=True)
    assert result.friedman.significant()
    # A vs B and A vs C: p = 2 / 2**10 each; B vs C is mixed. Holm: the smaller of the two tied p-values
    # gets 3 x 0.00195 = 0.00586, the other max(0.00586, 2 x 0.00195) = 0.00586
    assert result.verdict.startswith("A has the best average rank (1.00) over 10 datasets")
    assert "significantly better than B (p_Holm = 0.00586), C (p_Holm = 0.00586)" in result.verdict
    assert "not distinguishable" not in result.verdict
    assert result.cliques == [["B", "C"]]


def test_verdict_when_friedman_rejects_but_no_pair_survives_holm():
    result = compare_across_datasets(demsar_auc_as_ranked_in_the_paper(), DEMSAR_NAMES, higher_is_better=True)
    assert result.verdict.startswith("C4.5+m+cf has the best average rank (1.96) and the variants differ")
    assert "not significantly different from any other variant" in result.verdict
    assert result.cliques == [["C4.5+m+cf", "C4.5+m", "C4.5+cf", "C4.5"]]


def test_verdict_partly_distinguishable():
    # percentages (integers: equal differences are exactly equal). C is last on all 10 datasets;
    # A beats B on 6 and loses on 4, always by 10 points, so A vs B is a sign test: p = 2 * P(X >= 6) = 0.754
    rows = [[90, 80, 70]] * 6 + [[80, 90, 70]] * 4
    result = compare_across_datasets(np.array(rows, dtype=float), ["A", "B", "C"], higher_is_better=True)
    a_vs_b = result.pairwise[0]
    assert a_vs_b.p == pytest.approx(2 * 386 / 1024) and not a_vs_b.significant
    assert result.verdict == (
        "A has the best average rank (1.40) over 10 datasets (Friedman/Iman–Davenport p = 2.64e-06); "
        "it is significantly better than C (p_Holm = 0.00586); it is not distinguishable from B"
    )
    assert result.cliques == [["A", "B"]]


def test_verdict_single_variant_and_no_datasets():
    assert verdict_across_datasets(["only"], friedman(np.ones((8, 1)), True), []) == (
        "only one variant (only); nothing to compare"
    )
    assert "no datasets" in verdict_across_datasets(["a", "b"], friedman(np.ones((0, 2)), True), [])


def test_docstring_examples_run():
    assert doctest.testmod(ranking, raise_on_error=False).failed == 0


# ----------------------------------------------------------------------------- the diagram

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_cd_diagram_is_written_atomically_as_a_png(tmp_path):
    comparison = compare_across_datasets(demsar_auc_as_ranked_in_the_paper(), DEMSAR_NAMES, higher_is_better=True)
    path = tmp_path / "figures" / "cd.png"  # the folder does not exist yet
    plot_critical_difference(comparison.average_ranks, comparison.cliques, path, "AUC over 14 datasets")
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    assert [p.name for p in path.parent.iterdir()] == ["cd.png"]  # no temporary file left behind
    plot_critical_difference({"a": 1.5, "b": 1.5}, [], path, "", note="no bars")  # replaces it
    assert path.read_bytes() != data


def test_cd_diagram_draws_each_name_at_its_rank_and_a_bar_per_clique():
    """Names hang at their average ranks (rank 1 on the right, the better half on the right side),
    and each clique of indistinguishable variants is one thick bar spanning exactly its ranks."""
    ranks = {"a": 1.25, "b": 2.0, "c": 2.5, "d": 4.25}
    figure = critical_difference_figure(ranks, [["a", "b", "c"], ["c", "d"]], "title")
    axes = figure.axes[0]
    texts = {text.get_text(): text for text in axes.texts}
    assert {f"{name} ({rank:.2f})" for name, rank in ranks.items()} <= set(texts)
    lines = axes.get_lines()
    axis = next(line for line in lines if line.get_linewidth() == 1.2)  # the rank axis, from 1 to the last tick
    highest = max(int(text) for text in texts if text.isdigit())
    assert highest == 5  # 4.25 lies beyond the 4th rank
    one, last = axis.get_xdata()
    assert one > last  # rank 1 is at the right end
    x_of = {rank: one + (last - one) * (rank - 1) / (highest - 1) for rank in ranks.values()}
    # each name's elbow starts at its rank on the axis; the two best are labelled on the right
    for name, rank in ranks.items():
        elbow = next(
            line for line in lines if len(line.get_xdata()) == 3 and line.get_xdata()[0] == pytest.approx(x_of[rank])
        )
        on_the_right = elbow.get_xdata()[2] > elbow.get_xdata()[0]
        assert on_the_right == (name in ("a", "b")), name
    bars = sorted(tuple(line.get_xdata()) for line in lines if line.get_linewidth() == 4)
    assert len(bars) == 2
    worse, better = sorted((min(x), max(x)) for x in bars)  # left to right
    # the bar of a..c spans ranks 2.5..1.25 (plus a fixed overhang each side); that of c..d 4.25..2.5
    overhang = better[1] - x_of[1.25]
    assert overhang > 0 and better[0] == pytest.approx(x_of[2.5] - overhang)
    assert worse == pytest.approx((x_of[4.25] - overhang, x_of[2.5] + overhang))


def test_cd_diagram_refuses_what_it_cannot_draw(tmp_path):
    path = tmp_path / "cd.png"
    with pytest.raises(ValueError, match="at least 2 variants"):
        plot_critical_difference({"bilstm": 1.0}, [], path, "one variant")
    with pytest.raises(ValueError, match="gru"):
        plot_critical_difference({"bilstm": 1.2, "lstm": 1.8}, [["bilstm", "gru"]], path, "unknown name")
    with pytest.raises(ValueError, match="finite"):
        plot_critical_difference({"bilstm": math.nan, "lstm": 1.8}, [], path, "nan rank")
    assert not path.exists()
