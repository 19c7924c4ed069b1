"""Statistics as small pure functions: ``paired`` (repeats of variants on one task: intervals,
Wilcoxon with Holm's correction, learning-curve summaries) and ``ranking`` (variants across
datasets: average ranks, Friedman / Iman-Davenport, pairwise Wilcoxon-Holm, cliques)."""
