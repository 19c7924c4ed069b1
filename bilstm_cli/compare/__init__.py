"""Comparisons: the plan of runs, executors that run them, statistics, and output files."""
