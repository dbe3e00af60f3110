"""Fold fusion micro-benchmark: k-fold CV with the folds stacked (fused) vs one after another.

Times ``cross_validate`` on builtin:digits for the default FNN (as a table) and a small CNN, with
``training.fuse_folds`` "on" and "off", alternating the two, on one thread. Early stopping is off so
both paths train the same number of epochs. Prints wall and CPU seconds and the median ratio
(sequential / fused; above 1 means fusion is faster).

    python -m benchmarks.fusion [--reps 3] [--epochs 10] [--folds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from orchestrator.config import Config, apply_overrides
from orchestrator.crossval import cross_validate
from orchestrator.pipeline import prepare_run

MODELS = {
    "fnn (default)": {"model.family": "fnn"},
    "cnn (small)": {"model.family": "cnn", "model.channels": [8, 16], "model.head_sizes": [32]},
}


def time_cv(config: Config, prepared) -> tuple[float, float, float]:
    """(wall s, CPU s, final mean validation accuracy) of one cross-validation."""
    wall, cpu = time.perf_counter(), time.process_time()
    cv = cross_validate(prepared, config)
    for _ in cv:
        pass
    accuracy = cv.result.summary()["accuracy"]["mean"]
    return time.perf_counter() - wall, time.process_time() - cpu, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, overrides in MODELS.items():
        base = apply_overrides(
            Config(),
            {
                "data.source": "builtin:digits",
                "split.folds": args.folds,
                "training.epochs": args.epochs,
                "training.early_stopping.enabled": False,
                "tracking.enabled": False,
                **overrides,
            },
        )
        prepared = prepare_run(base).prepared
        configs = {
            mode: apply_overrides(base, {"training.fuse_folds": mode}) for mode in ("off", "on")
        }
        times: dict[str, list[tuple[float, float, float]]] = {"off": [], "on": []}
        for rep in range(args.reps):
            order = ("off", "on") if rep % 2 == 0 else ("on", "off")  # alternate who goes first
            for mode in order:
                times[mode].append(time_cv(configs[mode], prepared))
        wall_ratio = statistics.median(
            s[0] / f[0] for s, f in zip(times["off"], times["on"], strict=True)
        )
        cpu_ratio = statistics.median(
            s[1] / f[1] for s, f in zip(times["off"], times["on"], strict=True)
        )
        print(f"{name}: {args.folds}-fold CV, {args.epochs} epochs, 1 thread, {args.reps} reps")
        for mode, label in (("off", "sequential"), ("on", "fused")):
            walls = ", ".join(f"{t[0]:.2f}" for t in times[mode])
            cpus = ", ".join(f"{t[1]:.2f}" for t in times[mode])
            acc = times[mode][-1][2]
            print(f"  {label:10s} wall s [{walls}]  cpu s [{cpus}]  val accuracy {acc:.4f}")
        print(f"  median ratio sequential/fused: wall {wall_ratio:.2f}x, cpu {cpu_ratio:.2f}x")


if __name__ == "__main__":
    main()
