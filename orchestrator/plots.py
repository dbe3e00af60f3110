"""Figures for the tracking store, drawn straight with Pillow; the caller saves them.

Every function returns a ``Figure`` (a Pillow image and ``save(path)``, which writes a PNG). A trial
logs three figures, and with matplotlib (its import, text layout, Agg rendering and PNG encoding)
they cost about a second of every trial; these take a few milliseconds. Plot areas with lines are
drawn at twice their size and reduced, which antialiases the lines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from orchestrator.chart import (
    CHANCE,
    INK,
    SOFT,
    TAB10,
    Axes,
    Canvas,
    Figure,
    blues,
    nice_ticks,
)
from orchestrator.glyphs import text_width


def confusion_matrix_figure(cm: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Counts with row-normalised shading; rows are true classes, columns predicted ones."""
    cm = np.asarray(cm)
    k = len(class_names)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix must be {k}x{k} for {k} classes, got {cm.shape}")
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    cell = int(np.clip(520 // max(k, 1), 14, 150))
    side = k * cell
    names = [n if len(n) <= 18 else n[:17] + "…" for n in map(str, class_names)]
    label_size = float(np.clip(cell * 0.75, 8, 12))
    shown = range(0, k, max(1, math.ceil(label_size * 1.3 / cell)))  # thin cells: every n-th
    widest = max((text_width(names[i], label_size) for i in shown), default=0.0)
    slanted = widest > cell * shown.step - 6
    x_height = (widest + label_size) * math.sqrt(0.5) if slanted else label_size * 1.3
    bar_text = text_width("1.0", Axes.TICK)
    left, top = round(16 + 18 + 8 + widest + 8), 44
    width = left + side + 20 + 16 + 6 + bar_text + 8 + 18 + 12
    c = Canvas(width, top + side + 14 + x_height + 18 + 14)  # straight lines: no supersampling

    cells = Image.fromarray(blues(share), "RGB").resize((side, side), Image.Resampling.NEAREST)
    c.image.paste(cells, (left, top))
    if cell >= 14:  # thin white lines between the cells
        for edge in range(cell, side, cell):
            c.line([(left + edge, top), (left + edge, top + side - 1)], (255, 255, 255))
            c.line([(left, top + edge), (left + side - 1, top + edge)], (255, 255, 255))
    c.rectangle((left - 1, top - 1, left + side, top + side), outline=SOFT)
    xs = [left + (i + 0.5) * cell for i in range(k)]
    ys = [top + (i + 0.5) * cell for i in range(k)]
    for i in shown:
        c.line([(left - 5, ys[i]), (left - 1, ys[i])], SOFT)
        c.text((left - 7, ys[i]), names[i], label_size, anchor="rm")
        c.line([(xs[i], top + side), (xs[i], top + side + 4)], SOFT)
        if slanted:
            c.text((xs[i] + 3, top + side + 8), names[i], label_size, "rm", angle=45)
        else:
            c.text((xs[i], top + side + 6), names[i], label_size, anchor="mt")
    if k <= 30:  # beyond that the numbers are unreadable anyway
        digits = len(str(int(cm.max(initial=0))))
        size = float(min(14, cell * 0.4, (cell - 4) / (0.64 * digits)))
        for (i, j), count in np.ndenumerate(cm):
            fill = (255, 255, 255) if share[i, j] > 0.5 else INK
            c.text((xs[j], ys[i]), str(int(count)), size, "mm", fill)
    title = f"confusion matrix (n={int(cm.sum())})"
    c.text((left + side / 2, top - 14), title, Axes.TITLE, anchor="ms")
    c.text((left + side / 2, top + side + 14 + x_height), "predicted", Axes.LABEL, anchor="mt")
    c.text((16, top + side / 2), "true", Axes.LABEL, "ma", angle=90)

    bar = left + side + 20  # the colour bar, 1 at the top
    ramp = blues(np.linspace(1.0, 0.0, side))[:, None, :].repeat(16, axis=1)
    c.image.paste(Image.fromarray(np.ascontiguousarray(ramp), "RGB"), (bar, top))
    c.rectangle((bar - 1, top - 1, bar + 16, top + side), outline=SOFT)
    for value in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        y = top + (1.0 - value) * (side - 1)
        c.line([(bar + 16, y), (bar + 20, y)], SOFT)
        c.text((bar + 22, y), f"{value:.1f}", Axes.TICK, anchor="lm")
    label = "share of true class"
    c.text((bar + 22 + bar_text + 8, top + side / 2), label, Axes.LABEL, "ma", angle=90)
    return Figure(c.image)


def _roc_points(y_bin: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """False/true positive rates and the AUC of one binary problem (numpy only)."""
    order = np.argsort(-score, kind="mergesort")
    y_sorted, s_sorted = y_bin[order], score[order]
    distinct = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
    tps = np.cumsum(y_sorted)[distinct]
    fps = (distinct + 1) - tps
    pos, neg = tps[-1], fps[-1]
    if pos == 0 or neg == 0:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0]), float("nan")
    tpr = np.r_[0.0, tps / pos]
    fpr = np.r_[0.0, fps / neg]
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def roc_curve_figure(y_true: np.ndarray, proba: np.ndarray, class_names: Sequence[str]) -> Figure:
    """ROC curves: one curve for two classes, one-vs-rest curves otherwise.

    ``y_true`` holds class indices, ``proba`` is ``(N, K)``; rows with NaN scores are skipped.
    """
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(proba, dtype=float)
    if p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    keep = ~np.isnan(p).any(axis=1)
    y, p = y[keep], p[keep]
    c = Canvas(600, 520)
    ticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    ax = Axes(c, (0, 0, 600, 520), (0.0, 1.0), (0.0, 1.02), ticks, ticks)
    title = "ROC curve" + (" (one vs rest)" if p.shape[1] > 2 else "")
    ax.frame(title, "false positive rate", "true positive rate")
    (x0, x1), (y0, y1) = ax.to_px([0, 1], [0, 1])
    ax.layer.dashed((x0, y0), (x1, y1), CHANCE, 1.2)
    entries = []
    classes = [1] if p.shape[1] == 2 else range(p.shape[1])
    for n, k in enumerate(classes if len(y) else []):
        fpr, tpr, auc = _roc_points((y == k).astype(np.int64), p[:, k])
        label = str(class_names[k]) if k < len(class_names) else str(k)
        if p.shape[1] == 2:
            label = f"positive class {label}"
        color = TAB10[n % len(TAB10)]
        ax.plot(fpr, tpr, color)
        entries.append((f"{label} (AUC {auc:.3f})", color, False))
    ax.finish(entries + [("chance", CHANCE, True)])
    if not len(y):
        ax.note("no rows with scores")
    return Figure(c.image)


def learning_curves_figure(history: Sequence[dict[str, Any]], metric: str) -> Figure:
    """Training and validation loss per epoch, and ``metric`` (e.g. ``val_accuracy``) beside it."""
    epochs = np.array([float(h.get("epoch", i + 1)) for i, h in enumerate(history)])

    def series(key: str) -> np.ndarray:
        return np.array([np.nan if h.get(key) is None else float(h[key]) for h in history])

    c = Canvas(1000, 400)
    lo, hi = (epochs.min(), epochs.max()) if len(epochs) else (1.0, 1.0)
    pad = max((hi - lo) * 0.04, 0.5 if hi == lo else 0.0)
    xlim = (lo - pad, hi + pad)
    xticks = [t for t in nice_ticks(lo, hi, 6, integer=True) if xlim[0] <= t <= xlim[1]] or [lo]
    panels = [
        ((0, 0, 500, 400), ["train_loss", "val_loss"], "loss", "loss (fold mean)"),
        ((500, 0, 1000, 400), [metric], metric, f"{metric} (fold mean)"),
    ]
    for outer, keys, ylabel, title in panels:
        lines = {k: series(k) for k in keys if any(k in h for h in history)}
        values = np.concatenate([v[np.isfinite(v)] for v in lines.values()] or [np.empty(0)])
        ylo, yhi = (values.min(), values.max()) if len(values) else (0.0, 1.0)
        ypad = (yhi - ylo) * 0.06 or max(abs(ylo) * 0.1, 0.05)
        ylim = (ylo - ypad, yhi + ypad)
        ax = Axes(c, outer, xlim, ylim, xticks, nice_ticks(*ylim, 5))
        ax.frame(title, "epoch", ylabel)
        colors = [TAB10[2]] if keys == [metric] else TAB10
        for ys, color in zip(lines.values(), colors, strict=False):
            ax.plot(epochs, ys, color, dots=True)
        ax.finish([(k, col, False) for k, col in zip(lines, colors, strict=False)])
        if not len(values):
            ax.note("no values")
    return Figure(c.image)


def warm_up() -> None:
    """Draw each figure once on made-up data and throw it away, to load the font and set the
    digits, letters and axis labels every figure shares.

    The first trial's figures otherwise pay for it (~70 ms of the search's tracking writer, on
    top of ~30 ms for the figures themselves); ``automl search`` calls this while Ray starts.
    """
    rng = np.random.default_rng(0)
    names = [str(i) for i in range(10)] + ["setosa", "versicolor", "virginica"]
    y = np.arange(40) % 3
    proba = rng.dirichlet(np.ones(3), size=40)
    confusion_matrix_figure(np.ones((3, 3), dtype=int) * 123456789, names[-3:])
    roc_curve_figure(y, proba, names[:3])
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.5 / e, "val_accuracy": 0.1 * e}
               for e in range(1, 10)]  # fmt: skip
    learning_curves_figure(history, "val_accuracy")
