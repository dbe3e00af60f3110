"""Figures for the tracking store; every function returns a Figure, the caller saves it.

Figures are built as plain ``matplotlib.figure.Figure`` objects, without pyplot: no backend, no
global figure registry to close, and less work per figure in a Ray worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure


def confusion_matrix_figure(cm: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Counts with row-normalised shading; rows are true classes, columns predicted ones."""
    cm = np.asarray(cm)
    k = len(class_names)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix must be {k}x{k} for {k} classes, got {cm.shape}")
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
    if k <= 30:  # beyond that the numbers are unreadable anyway
        for i in range(k):
            for j in range(k):
                color = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", color=color, fontsize=8)
    ax.set_title(f"confusion matrix (n={int(cm.sum())})")
    fig.tight_layout()
    return fig


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


def learning_curves_figure(history: Sequence[dict[str, Any]], metric: str) -> Figure:
    """Training and validation loss per epoch, and ``metric`` (e.g. ``val_accuracy``) beside it."""
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
