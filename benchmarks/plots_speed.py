"""Trial figures micro-benchmark: what one trial's PNGs cost the tracking writer.

A figure set is what a trial's run gets (orchestrator/tracking/artifacts.py): for a digits-like
classification (10 classes, 1797 out-of-fold rows, 20 epochs of history) the confusion matrix,
the one-vs-rest ROC curves and the learning curves; for a regression, its learning curves only.
Each set is drawn and saved as the tracking code does (``figure.save(path)``).

Steady: after one warm-up set, ``--reps`` sets of each kind, alternating; the median wall and CPU
milliseconds per figure and per set (CPU time is less disturbed by other load on the machine).
First: a fresh interpreter imports ``orchestrator.plots`` (matplotlib with it) and saves its
first classification set, as a new process's first trial does; the median of ``--fresh`` runs,
split into the import and the first set.

    python -m benchmarks.plots_speed [--reps 15] [--fresh 3] [--examples /tmp/plots_examples]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SETS = {
    "classification": ("confusion_matrix", "roc_curve", "learning_curves"),
    "regression": ("learning_curves",),
}


def digits_like(k: int = 10, n: int = 1797, epochs: int = 20, seed: int = 0) -> dict[str, Any]:
    """Out-of-fold labels, probabilities (about 95% accurate) and a fold-mean history."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 2.5
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, proba.argmax(axis=1)), 1)
    history = [
        {"epoch": float(i), "train_loss": 2.3 * 0.8**i, "val_loss": 2.3 * 0.82**i + 0.004 * i,
         "val_accuracy": 0.96 - 0.8 * 0.7**i}
        for i in range(1, epochs + 1)
    ]  # fmt: skip
    names = [str(i) for i in range(k)]
    return {"cm": cm, "y": y, "proba": proba, "history": history, "names": names}


def regression_history(epochs: int = 20) -> list[dict[str, float]]:
    return [
        {"epoch": float(i), "train_loss": 0.9 * 0.85**i + 0.05, "val_loss": 0.9 * 0.87**i + 0.08,
         "val_r2": 0.9 - 0.8 * 0.8**i}
        for i in range(1, epochs + 1)
    ]  # fmt: skip


def figure_sets(data: dict[str, Any]) -> dict[str, dict[str, Callable[[Path], None]]]:
    """Per kind of set, one callable per figure that draws it and saves it to the given path.

    ``orchestrator.plots`` is imported here, so that the first set in a fresh process counts it.
    """
    from orchestrator import plots

    regression = regression_history()
    return {
        "classification": {
            "confusion_matrix": lambda path: plots.confusion_matrix_figure(
                data["cm"], data["names"]
            ).save(path),
            "roc_curve": lambda path: plots.roc_curve_figure(
                data["y"], data["proba"], data["names"]
            ).save(path),
            "learning_curves": lambda path: plots.learning_curves_figure(
                data["history"], "val_accuracy"
            ).save(path),
        },
        "regression": {
            "learning_curves": lambda path: plots.learning_curves_figure(regression, "val_r2").save(
                path
            ),
        },
    }


def time_first(folder: str) -> None:
    """In a fresh interpreter: seconds to import the drawing code, then to save the first set."""
    data = digits_like()
    start = time.perf_counter()
    sets = figure_sets(data)
    imported = time.perf_counter()
    for name, make in sets["classification"].items():
        make(Path(folder, f"{name}.png"))
    print(json.dumps({"import_s": imported - start, "set_s": time.perf_counter() - imported}))


def first_set() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.check_output(
            [sys.executable, "-m", "benchmarks.plots_speed", "--first", tmp], text=True
        )
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--fresh", type=int, default=3, help="fresh interpreters for the first set")
    parser.add_argument("--examples", type=Path, help="also keep the PNGs here")
    parser.add_argument("--first", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first:
        time_first(args.first)
        return

    sets = figure_sets(digits_like())
    wall: dict[str, dict[str, list[float]]] = {s: {f: [] for f in SETS[s]} for s in SETS}
    cpu: dict[str, dict[str, list[float]]] = {s: {f: [] for f in SETS[s]} for s in SETS}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, figures in sets.items():  # warm-up: fonts, caches
            for name, make in figures.items():
                make(Path(tmp, f"{kind}-{name}.png"))
        for _ in range(args.reps):
            for kind, figures in sets.items():
                for name, make in figures.items():
                    gc.collect()  # so one figure's garbage is not collected on the next's clock
                    start, cpu_start = time.perf_counter(), time.process_time()
                    make(Path(tmp, f"{kind}-{name}.png"))
                    wall[kind][name].append(time.perf_counter() - start)
                    cpu[kind][name].append(time.process_time() - cpu_start)
        sizes = {p.name: p.stat().st_size for p in Path(tmp).glob("*.png")}
        if args.examples:
            args.examples.mkdir(parents=True, exist_ok=True)
            for path in Path(tmp).iterdir():
                path.replace(args.examples / path.name)

    print(f"one trial's figures, drawn with matplotlib (Agg) and saved: median of {args.reps}")
    print(f"{'set':<16}{'figure':<18}{'wall ms':>9}{'CPU ms':>9}{'PNG KB':>9}")
    for kind, figures in SETS.items():
        set_wall = [sum(reps) for reps in zip(*wall[kind].values(), strict=True)]
        set_cpu = [sum(reps) for reps in zip(*cpu[kind].values(), strict=True)]
        for name in figures:
            kb = sizes.get(f"{kind}-{name}.png", 0) / 1024
            print(f"{kind:<16}{name:<18}{1000 * statistics.median(wall[kind][name]):>9.1f}"
                  f"{1000 * statistics.median(cpu[kind][name]):>9.1f}{kb:>9.0f}")  # fmt: skip
        print(f"{kind:<16}{'whole set':<18}{1000 * statistics.median(set_wall):>9.1f}"
              f"{1000 * statistics.median(set_cpu):>9.1f}")  # fmt: skip
    firsts = [first_set() for _ in range(args.fresh)]
    imported = 1000 * statistics.median(f["import_s"] for f in firsts)
    drawn = 1000 * statistics.median(f["set_s"] for f in firsts)
    total = 1000 * statistics.median(f["import_s"] + f["set_s"] for f in firsts)
    print(
        f"first classification set in a fresh interpreter (median of {args.fresh}, wall ms): "
        f"{total:.0f} = import of orchestrator.plots {imported:.0f} + first set {drawn:.0f}"
    )


if __name__ == "__main__":
    main()
