"""Statistics against hand-computed values and SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bilstm_cli.stats.paired import (
    area_under_curve,
    epochs_to_threshold,
    holm,
    mean_interval,
    median_epochs,
    wilcoxon_p,
)


def test_mean_interval_by_hand():
    values = [0.2, 0.4, 0.3, 0.5]
    mean = 0.35
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)  # 0.129099...
    half = 3.182446305284263 * sd / 2  # t(0.975, df=3) from tables
    interval = mean_interval(values)
    assert interval.mean == pytest.approx(mean)
    assert interval.low == pytest.approx(mean - half) and interval.high == pytest.approx(mean + half)


def test_single_value_has_no_interval():
    interval = mean_interval([0.7])
    assert interval.mean == 0.7 and math.isnan(interval.low) and math.isnan(interval.high)


def test_wilcoxon_matches_scipy_and_hand_value():
    a = [0.10, 0.12, 0.09, 0.11, 0.13, 0.10, 0.12]
    b = [0.15, 0.14, 0.16, 0.12, 0.18, 0.19, 0.13]
    assert wilcoxon_p(a, b) == pytest.approx(scipy_stats.wilcoxon(a, b).pvalue)
    # all 7 differences negative: exact two-sided p = 2 / 2**7
    assert wilcoxon_p(a, b) == pytest.approx(2 / 2**7)


def test_wilcoxon_identical_and_too_few():
    assert wilcoxon_p([1, 2, 3], [1, 2, 3]) == 1.0
    assert wilcoxon_p([1], [2]) is None


def test_holm_by_hand():
    # sorted p: 0.01 (x3), 0.02 (x2), 0.04 (x1) -> 0.03, 0.04, 0.04 (monotone)
    assert holm([0.04, 0.01, None, 0.02]) == pytest.approx([0.04, 0.03, None, 0.04], nan_ok=True)
    assert holm([0.5, 0.6]) == [1.0, 1.0]


def test_area_under_curve_is_the_mean_height():
    assert area_under_curve([10, 20, 30], [1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert area_under_curve([10, 20], [0.4, 0.2]) == pytest.approx(0.3)


def test_epochs_to_threshold_and_median_with_not_reached():
    assert epochs_to_threshold([10, 20, 30], [0.5, 0.91, 0.95], 0.9) == 20
    assert epochs_to_threshold([10, 20], [0.5, 0.6], 0.9) is None
    assert median_epochs([10, 30, None]) == 30  # not reached counts as later than any
    assert median_epochs([10, None, None]) is None
    assert median_epochs([10, 20]) == 15


def test_interval_covers_the_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = sum((lambda i: i.low <= 1.0 <= i.high)(mean_interval(rng.normal(1.0, 2.0, size=8))) for _ in range(2000))
    assert 0.93 < covered / 2000 < 0.97
