"""The confirmation of a search: its finalists and the starting config, re-run as a paired
comparison with fresh seeds on data the search never saw, and judged against the baseline.

A search's best score is optimistic: it is the best of many noisy tries, on the validation
data the search chose by. The confirmation measures each finalist again (seeds the search
did not use, scores on the test file or on a hold-out split made before the search, for
generated data a fresh validation set) and tests it against the starting config, repeat by
repeat, with the Wilcoxon signed-rank test and Holm's correction across finalists.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import yaml

from ..config.schema import MAX_SEED, Config, DatasetSpec
from ..stats.paired import ALPHA, MIN_REPEATS_FOR_TEST, holm, mean_interval, wilcoxon_p

BASELINE = "baseline"
CONFIRM_SEED_OFFSET = 1_000_003  # confirmation seeds start here above the search seed


def trial_name(number: int) -> str:
    return f"trial-{number}"


def confirm_seed(search_seed: int) -> int:
    """The first confirmation seed: far from the search seed (repeat r uses it + r)."""
    return (search_seed + CONFIRM_SEED_OFFSET) % (MAX_SEED - 100_000)


def fresh_validation_seed(seed: int) -> int:
    """Generated data: the confirmation's validation set is drawn with another seed."""
    return (seed + 1) % MAX_SEED


def finalist_variants(base: Config, finalists: list[tuple[int, dict[str, Any]]]) -> tuple[dict, list[int]]:
    """``{name: overrides}`` for the baseline and each finalist whose settings differ from the
    baseline's and from those before it (equal runs compare nothing); and the numbers dropped."""
    from ..config.resolve import with_overrides

    def key(config: Config) -> str:
        return yaml.safe_dump([config.model.model_dump(), config.train.model_dump(), config.data.model_dump()])

    variants: dict[str, dict[str, Any]] = {BASELINE: {}}
    seen = {key(base)}
    dropped = []
    for number, params in finalists:
        settings = key(with_overrides(base, params, trial_name(number)))
        if settings in seen:
            dropped.append(number)
            continue
        seen.add(settings)
        variants[trial_name(number)] = dict(params)
    return variants, dropped


def confirm_config(base: Config, variants: dict[str, dict[str, Any]], dataset: DatasetSpec, search_seed: int) -> Config:
    """The comparison's config: named variants, one dataset, fresh seeds, the tune metric."""
    config = base.model_copy(deep=True)
    config.compare.variants = variants
    config.compare.grid = {}
    config.compare.datasets = [dataset]
    config.compare.repeats = base.tune.confirm_repeats
    config.compare.metric = base.tune.metric
    config.train.seed = confirm_seed(search_seed)
    config.output.overwrite = True  # a confirm/ folder left by a killed claim is bilstm's own
    return config


def judge(records: dict[str, list[dict]], metric: str, search_scores: dict[str, float]) -> dict[str, Any]:
    """Per finalist: its search score, its confirmed score (mean and 95% interval), the
    optimism, the paired difference from the baseline and its Holm-adjusted Wilcoxon test;
    and a verdict that claims only what the tests support."""
    higher = metric == "accuracy"
    baseline = [r["final"][metric] for r in records[BASELINE]]
    repeats = len(baseline)
    rows, p_values = [], []
    for name, runs in records.items():
        scores = [r["final"][metric] for r in runs]
        confirmed = mean_interval(scores)
        searched = search_scores.get(name)
        row: dict[str, Any] = {
            "variant": name,
            "search_score": searched,
            "confirmed": confirmed.mean,
            "confirmed_ci": [confirmed.low, confirmed.high],
            "seeds": [r["seed"] for r in runs],
            "split": runs[0]["final"]["split"],
        }
        if searched is not None:
            row["optimism"] = (searched - confirmed.mean) if higher else (confirmed.mean - searched)
        if name != BASELINE:
            difference = mean_interval(np.subtract(scores, baseline))
            row["difference"] = difference.mean
            row["difference_ci"] = [difference.low, difference.high]
            row["p_value"] = wilcoxon_p(scores, baseline)
            p_values.append(row["p_value"])
        rows.append(row)
    adjusted = iter(holm(p_values))
    for row in rows:
        if row["variant"] != BASELINE:
            row["p_holm"] = next(adjusted)
            row["verdict"] = _row_verdict(row, repeats, higher)
    best = max(rows, key=lambda r: r["confirmed"]) if higher else min(rows, key=lambda r: r["confirmed"])
    return {
        "metric": metric,
        "higher_is_better": higher,
        "repeats": repeats,
        "test": "paired Wilcoxon signed-rank vs the baseline, two-sided, Holm-adjusted across finalists",
        "rows": rows,
        "winner": best["variant"],
        "verdict": _verdict(rows, best, repeats, higher),
    }


def _row_verdict(row: dict[str, Any], repeats: int, higher: bool) -> str:
    if repeats < MIN_REPEATS_FOR_TEST:
        return f"underpowered: {repeats} repeats cannot reach p < {ALPHA:g}"
    if row["p_holm"] is None or row["p_holm"] >= ALPHA:
        return "not significantly different from the baseline"
    better = row["difference"] > 0 if higher else row["difference"] < 0
    return f"significantly {'better' if better else 'worse'} than the baseline"


def _verdict(rows: list[dict[str, Any]], best: dict[str, Any], repeats: int, higher: bool) -> str:
    finalists = [r for r in rows if r["variant"] != BASELINE]
    if not finalists:
        return "no finalist differs from the starting config; nothing to confirm"
    split = best["split"]
    if repeats < MIN_REPEATS_FOR_TEST:
        return (
            f"{best['variant']} scores best on the held-out {split} data, but with {repeats} repeats the Wilcoxon "
            f"test cannot reach p < {ALPHA:g} (underpowered); use --confirm-repeats {MIN_REPEATS_FOR_TEST} or more"
        )
    better = [r for r in finalists if r["verdict"].startswith("significantly better")]
    if not better:
        return (
            f"no finalist is significantly better than the starting config on held-out {split} data "
            f"(best: {best['variant']}); the search's gains may be optimism"
        )
    top = min(better, key=lambda r: -r["confirmed"] if higher else r["confirmed"])
    return (
        f"{top['variant']} is significantly better than the starting config on held-out {split} data "
        f"(mean difference {top['difference']:+.4g}, Holm-adjusted p = {top['p_holm']:.3g}, {repeats} paired repeats)"
        + (
            f"; {len(better) - 1} other finalist(s) too, and finalists are not tested against each other"
            if len(better) > 1
            else ""
        )
    )
