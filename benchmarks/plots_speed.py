"""Trial figures micro-benchmark: the matplotlib figures (before) vs the Pillow ones (now).

Draws and saves one trial's three PNGs (confusion matrix, ROC one-vs-rest, learning curves) for a
digits-like trial: 10 classes, 1797 out-of-fold rows, 20 epochs of history. Each side runs once to
warm up (fonts, caches), then ``--reps`` times, alternating; prints the median milliseconds per
figure and per set and the ratio (and CPU time per set, which other load on the machine disturbs
less), then the cost of the first set in a fresh interpreter, imports included (a new Ray worker's
first trial).
The matplotlib code is the old ``orchestrator/plots.py``, kept here only for this comparison.

    python -m benchmarks.plots_speed [--reps 20] [--examples /tmp/plots_examples]
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

FIGURES = ("confusion_matrix", "roc_curve", "learning_curves")


def digits_like(k: int = 10, n: int = 1797, epochs: int = 20, seed: int = 0) -> dict[str, Any]:
    """Out-of-fold labels, probabilities (about 95% accurate) and a fold-mean history."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 2.5
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, proba.argmax(axis=1)), 1)
    e = np.arange(1, epochs + 1)
    history = [
        {"epoch": float(i), "train_loss": 2.3 * 0.8**i, "val_loss": 2.3 * 0.82**i + 0.004 * i,
         "val_accuracy": 0.96 - 0.8 * 0.7**i}
        for i in e
    ]  # fmt: skip
    names = [str(i) for i in range(k)]
    return {"cm": cm, "y": y, "proba": proba, "history": history, "names": names}


# ---- before: matplotlib (orchestrator/plots.py up to the Pillow rewrite) -------------------------


def old_confusion_matrix_figure(cm: np.ndarray, class_names: Sequence[str]) -> Any:
    from matplotlib.figure import Figure

    cm = np.asarray(cm)
    k = len(class_names)
    size = min(4 + 0.45 * k, 16)
    fig = Figure(figsize=(size, size * 0.85))
    ax = fig.subplots()
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    ax.set_xticks(range(k), labels=[str(c) for c in class_names], rotation=45, ha="right")
    ax.set_yticks(range(k), labels=[str(c) for c in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                color = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", color=color, fontsize=8)
    ax.set_title(f"confusion matrix (n={int(cm.sum())})")
    fig.tight_layout()
    return fig


def old_roc_curve_figure(y_true: np.ndarray, proba: np.ndarray, class_names: Sequence[str]) -> Any:
    from matplotlib.figure import Figure

    from orchestrator.plots import _roc_points  # unchanged, numpy only

    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(proba, dtype=float)
    if p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    keep = ~np.isnan(p).any(axis=1)
    y, p = y[keep], p[keep]
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    classes = [1] if p.shape[1] == 2 else range(p.shape[1])
    for k in classes:
        fpr, tpr, auc = _roc_points((y == k).astype(np.int64), p[:, k])
        label = str(class_names[k]) if k < len(class_names) else str(k)
        if p.shape[1] == 2:
            label = f"positive class {label}"
        ax.plot(fpr, tpr, lw=1.5, label=f"{label} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=1, linestyle="--")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve" + (" (one vs rest)" if p.shape[1] > 2 else ""))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def old_learning_curves_figure(history: Sequence[dict[str, Any]], metric: str) -> Any:
    from matplotlib.figure import Figure

    epochs = [int(h.get("epoch", i + 1)) for i, h in enumerate(history)]

    def series(key: str) -> list[float]:
        return [float(h.get(key, np.nan)) if h.get(key) is not None else np.nan for h in history]

    fig = Figure(figsize=(10, 4))
    loss_ax, metric_ax = fig.subplots(1, 2)
    for key in ("train_loss", "val_loss"):
        if any(key in h for h in history):
            loss_ax.plot(epochs, series(key), marker=".", label=key)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("loss (fold mean)")
    if loss_ax.lines:
        loss_ax.legend()
    if any(metric in h for h in history):
        metric_ax.plot(epochs, series(metric), marker=".", color="tab:green", label=metric)
        metric_ax.legend()
    metric_ax.set_xlabel("epoch")
    metric_ax.set_ylabel(metric)
    metric_ax.set_title(f"{metric} (fold mean)")
    fig.tight_layout()
    return fig


# ---- timing -------------------------------------------------------------------------------------


def figure_set(old: bool, data: dict[str, Any]) -> dict[str, Callable[[Path], None]]:
    """One callable per figure that draws it and writes it to the given path.

    The drawing modules are imported here, so that ``first_set`` counts their import.
    """
    if old:
        draw = (old_confusion_matrix_figure, old_roc_curve_figure, old_learning_curves_figure)

        def save(fig: Any, path: Path) -> None:
            fig.savefig(path, dpi=100)

    else:
        from orchestrator import plots

        draw = (plots.confusion_matrix_figure, plots.roc_curve_figure, plots.learning_curves_figure)

        def save(fig: Any, path: Path) -> None:
            fig.save(path)  # as orchestrator/tracking/artifacts.py does

    cm_fig, roc_fig, curves_fig = draw
    return {
        "confusion_matrix": lambda path: save(cm_fig(data["cm"], data["names"]), path),
        "roc_curve": lambda path: save(roc_fig(data["y"], data["proba"], data["names"]), path),
        "learning_curves": lambda path: save(curves_fig(data["history"], "val_accuracy"), path),
    }


def cold(figures: dict[str, Callable[[Path], None]]) -> dict[str, Callable[[Path], None]]:
    """The same figures with the text caches emptied first, as in a worker's first trial."""
    from orchestrator.glyphs import _glyph, text_mask

    def run(make: Callable[[Path], None], path: Path) -> None:
        text_mask.cache_clear()
        _glyph.cache_clear()
        make(path)

    return {name: functools.partial(run, make) for name, make in figures.items()}


def first_set(side: str) -> float:
    """Seconds for a fresh interpreter to import the drawing code and save its first set."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.check_output(
            [sys.executable, "-m", "benchmarks.plots_speed", "--first", side, tmp], text=True
        )
    return float(out.strip().splitlines()[-1])


def time_first(side: str, folder: str) -> None:
    data = digits_like()
    start = time.perf_counter()
    for name, make in figure_set(side == "matplotlib", data).items():
        make(Path(folder, f"{name}.png"))
    print(time.perf_counter() - start)


def antialiasing(reps: int = 10) -> str:
    """Median ms to bring a twice-size learning-curves canvas down: reduce() vs a Lanczos resize."""
    from PIL import Image

    canvas = Image.new("RGB", (2000, 800), "white")
    ways = {
        "reduce(2)": lambda: canvas.reduce(2),
        "resize LANCZOS": lambda: canvas.resize((1000, 400), Image.Resampling.LANCZOS),
    }
    out = []
    for name, way in ways.items():
        way()
        runs = []
        for _ in range(reps):
            start = time.perf_counter()
            way()
            runs.append(time.perf_counter() - start)
        out.append(f"{name} {1000 * statistics.median(runs):.1f}")
    return ", ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--examples", type=Path, help="also keep both sets of PNGs here")
    parser.add_argument("--first", nargs=2, metavar=("SIDE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first:
        time_first(*args.first)
        return
    data = digits_like()
    pillow = figure_set(False, data)
    sides = {"matplotlib": figure_set(True, data), "pillow": pillow, "pillow cold": cold(pillow)}
    times: dict[str, dict[str, list[float]]] = {s: {f: [] for f in FIGURES} for s in sides}
    cpu: dict[str, list[float]] = {s: [] for s in sides}  # CPU seconds per set
    with tempfile.TemporaryDirectory() as tmp:
        names = {side: side.split()[0] for side in sides}  # file names: matplotlib-*, pillow-*
        for side, figures in sides.items():  # warm-up: imports, fonts, caches
            for name, make in figures.items():
                make(Path(tmp, f"{names[side]}-{name}.png"))
        for _ in range(args.reps):
            for side, figures in sides.items():
                cpu[side].append(0.0)
                for name, make in figures.items():
                    gc.collect()  # so one side's garbage is not collected on the other's clock
                    start, cpu_start = time.perf_counter(), time.process_time()
                    make(Path(tmp, f"{names[side]}-{name}.png"))
                    times[side][name].append(time.perf_counter() - start)
                    cpu[side][-1] += time.process_time() - cpu_start
        sizes = {p.name: p.stat().st_size for p in Path(tmp).glob("*.png")}
        if args.examples:
            args.examples.mkdir(parents=True, exist_ok=True)
            for path in Path(tmp).iterdir():
                path.replace(args.examples / path.name)

    print(f"one digits-like trial's figures, drawn and saved: median ms of {args.reps} runs")
    print("(cold: Pillow's text caches emptied before each figure, as in a worker's first trial)")
    header = ("figure", "matplotlib", "pillow", "cold", "ratio", "PNG KB old/new")
    widths = (18, 11, 8, 7, 8, 16)
    print(
        "".join(
            f"{h:<{w}}" if i == 0 else f"{h:>{w}}"
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    totals = dict.fromkeys(sides, 0.0)
    for name in FIGURES:
        ms = {side: 1000 * statistics.median(times[side][name]) for side in sides}
        for side in sides:
            totals[side] += ms[side]
        kb = "/".join(
            f"{sizes.get(f'{s}-{name}.png', 0) / 1024:.0f}" for s in ("matplotlib", "pillow")
        )
        print(f"{name:<18}{ms['matplotlib']:>11.1f}{ms['pillow']:>8.1f}{ms['pillow cold']:>7.1f}"
              f"{ms['matplotlib'] / ms['pillow']:>7.1f}x{kb:>16}")  # fmt: skip
    old, new, new_cold = totals["matplotlib"], totals["pillow"], totals["pillow cold"]
    print(f"{'set of three':<18}{old:>11.1f}{new:>8.1f}{new_cold:>7.1f}{old / new:>7.1f}x")
    cpu_ms = ", ".join(f"{side} {1000 * statistics.median(cpu[side]):.1f}" for side in sides)
    print(f"CPU ms per set (median, less sensitive to other load): {cpu_ms}")
    print(f"antialiasing a 2000x800 canvas to 1000x400 (ms): {antialiasing()}")
    print("first set in a fresh interpreter, imports included (median of 3, ms): "
          + ", ".join(f"{side} {1000 * statistics.median(first_set(side) for _ in 'abc'):.0f}"
                      for side in ("matplotlib", "pillow")))  # fmt: skip


if __name__ == "__main__":
    main()
