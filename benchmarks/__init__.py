"""Benchmark suite: ``python -m benchmarks.run [--quick] [--only B1,B3] [--reps N] --out DIR``.

B1 peer (skorch GridSearchCV), B2 limit (bare single-thread loop), B3 per-trial overhead (Ray Tune,
MLflow) and B4 scale (200k-row table, memory). Each benchmark runs its contenders in fresh child
processes, alternating within a repetition, and reports medians and ratios against its goals.
"""
