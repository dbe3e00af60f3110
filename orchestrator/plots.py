"""Figures for the tracking store, drawn with matplotlib; the caller saves them.

Every function returns a :class:`PlotFigure`: a ``matplotlib.figure.Figure`` on its own Agg canvas
whose ``save(path)`` writes a PNG. Figures are made with ``Figure`` directly, never through pyplot:
pyplot's backend and its list of open figures are untouched, nothing registers a figure, and one
is freed like any other object once the caller drops it (no ``plt.close``). matplotlib does not
promise that drawing is thread-safe, so building and saving a figure hold one lock: the search's
tracking writer thread and the refit's logging may draw at the same time.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import MaxNLocator

DPI = 100
NAME_CHARS = 18  # longer class names are cut to this, with an ellipsis
COUNTS_UP_TO = 30  # classes; beyond that a confusion matrix's counts are too small to read

# The axes are placed by hand, in inches, from the measured widths of the labels that vary:
# matplotlib's constrained or tight layout would draw every figure twice (~40% of its cost).
_EDGE = 0.1  # blank border
_LABEL = 0.26  # an axis label at the default 10 points, with its padding
_TICK = 0.1  # a tick and the gap to its label
_TICK_SIZE = 10.0  # points, matplotlib's default for tick labels
_LINE = _TICK_SIZE * 1.25 / 72  # a line of tick label text
_TITLE = 0.45  # the title, above the axes
_INK = "#1e1e1e"

_LOCK = threading.RLock()
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(draw: Callable[_P, _R]) -> Callable[_P, _R]:
    @functools.wraps(draw)
    def locked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _LOCK:
            return draw(*args, **kwargs)

    return locked


class PlotFigure(Figure):
    """A matplotlib figure drawn by Agg at :data:`DPI`; ``save(path)`` writes it as a PNG."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(dpi=DPI, facecolor="white", **kwargs)
        FigureCanvasAgg(self)  # sets self.canvas: no backend lookup, no pyplot

    @_locked
    def save(self, path: str | Path) -> None:
        self.savefig(path, format="png", dpi=DPI)


def _text_width(fig: Figure, texts: Sequence[str], size: float) -> float:
    """The widest of ``texts`` at ``size`` points, in inches, as Agg will set it."""
    renderer = fig.canvas.get_renderer()
    prop = FontProperties(size=size)
    widths = [renderer.get_text_width_height_descent(t, prop, ismath=False)[0] for t in texts]
    return max(widths, default=0.0) / fig.dpi


def _short(name: Any) -> str:
    name = str(name)
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def _axes_at(fig: Figure, left: float, bottom: float, width: float, height: float) -> Any:
    """New axes at a box given in inches from the figure's lower left corner."""
    w, h = fig.get_size_inches()
    return fig.add_axes((left / w, bottom / h, width / w, height / h))


@_locked
def confusion_matrix_figure(cm: np.ndarray, class_names: Sequence[str]) -> PlotFigure:
    """Counts in the cells, shaded by their share of the row (with a colour bar); rows are true
    classes, columns predicted ones. Class names label both axes (every n-th one beyond 40
    classes; slanted when they do not fit under their column); counts are written up to
    :data:`COUNTS_UP_TO` classes."""
    cm = np.asarray(cm)
    k = len(class_names)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix must be {k}x{k} for {k} classes, got {cm.shape}")
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    names = [_short(n) for n in class_names]
    every = max(1, math.ceil(k / 40))
    shown = np.arange(0, k, every)
    labels = [names[i] for i in shown]

    side = float(np.clip(2.0 + 0.42 * k, 4.0, 10.0))  # the heatmap's side, inches
    cell = side / max(k, 1)
    label_size = float(np.clip(cell * 72 * 0.6, 6.0, 10.0))
    fig = PlotFigure(figsize=(1.0, 1.0))
    widest = _text_width(fig, labels, label_size)
    line = label_size * 1.25 / 72  # a line of label text, inches
    slanted = widest > cell * every - 0.08
    left = _EDGE + _LABEL + widest + _TICK
    bottom = _EDGE + _LABEL + ((widest + line) * math.sqrt(0.5) if slanted else line) + _TICK
    bar_gap, bar = 0.25, 0.2
    right = bar_gap + bar + _TICK + _text_width(fig, ["1.0"], _TICK_SIZE) + 0.08 + _LABEL + _EDGE
    fig.set_size_inches(left + side + right, bottom + side + _TITLE)
    ax = _axes_at(fig, left, bottom, side, side)
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    cax = _axes_at(fig, left + side + bar_gap, bottom, bar, side)
    fig.colorbar(image, cax=cax, label="share of the true class")

    slant = {"rotation": 45, "ha": "right", "rotation_mode": "anchor"} if slanted else {}
    ax.set_xticks(shown, labels=labels, fontsize=label_size, parse_math=False, **slant)
    ax.set_yticks(shown, labels=labels, fontsize=label_size, parse_math=False)
    _cells(ax, cm, share, cell)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion matrix (n={int(cm.sum())})")
    return fig


def _cells(ax: Any, cm: np.ndarray, share: np.ndarray, cell: float) -> None:
    """White lines between the cells, and each cell's count (dark on light, white on dark)."""
    k = len(cm)
    ax.spines[:].set_visible(False)
    if k <= 40:  # two line collections: ~1 ms each, where minor ticks cost ~1 ms a tick
        edges = np.arange(k + 1) - 0.5
        ax.vlines(edges, -0.5, k - 0.5, colors="white", linewidth=1.0)
        ax.hlines(edges, -0.5, k - 0.5, colors="white", linewidth=1.0)
    if k > COUNTS_UP_TO:
        return
    digits = len(str(int(cm.max(initial=0))))
    size = float(np.clip(cell * 72 / (0.62 * digits + 0.5), 5.0, 11.0))
    for (i, j), count in np.ndenumerate(cm):
        color = "white" if share[i, j] > 0.5 else _INK
        ax.text(j, i, str(int(count)), ha="center", va="center", color=color, fontsize=size)


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


def _roc_curves(
    y_true: np.ndarray, proba: np.ndarray, class_names: Sequence[str]
) -> tuple[list[tuple[np.ndarray, np.ndarray, str]], list[float], int]:
    """Each curve's points and legend label, the AUCs, and the number of score columns."""
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(proba, dtype=float)
    if p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    keep = ~np.isnan(p).any(axis=1)
    y, p = y[keep], p[keep]
    curves, aucs = [], []
    for k in ([1] if p.shape[1] == 2 else range(p.shape[1])) if len(y) else []:
        fpr, tpr, auc = _roc_points((y == k).astype(np.int64), p[:, k])
        label = _short(class_names[k]) if k < len(class_names) else str(k)
        if p.shape[1] == 2:
            label = f"positive class {label}"
        shown = "n/a, one class only" if math.isnan(auc) else f"{auc:.3f}"
        curves.append((fpr, tpr, f"{label} (AUC {shown})"))
        aucs.append(auc)
    return curves, aucs, p.shape[1]


@_locked
def roc_curve_figure(
    y_true: np.ndarray, proba: np.ndarray, class_names: Sequence[str]
) -> PlotFigure:
    """ROC curves: one curve for two classes, one-vs-rest curves otherwise, with each AUC in the
    legend (beside the plot beyond 10 classes) and their mean in the title.

    ``y_true`` holds class indices, ``proba`` is ``(N, K)``; rows with NaN scores are skipped.
    """
    curves, aucs, columns = _roc_curves(y_true, proba, class_names)
    labels = [c[2] for c in curves] + ["chance (AUC 0.5)"]
    fig = PlotFigure(figsize=(1.0, 1.0))
    outside = columns > 10  # the legend goes beside the plot, in columns of up to 24
    legend_columns = math.ceil(len(labels) / 24)
    legend = legend_columns * (_text_width(fig, labels, 8.0) + 0.4) + 0.1 if outside else 0.0
    side = 4.6
    left = _EDGE + _LABEL + _text_width(fig, ["0.0"], _TICK_SIZE) + _TICK
    bottom = _EDGE + _LABEL + _LINE + _TICK
    fig.set_size_inches(left + side + 0.25 + legend, bottom + side + _TITLE)
    ax = _axes_at(fig, left, bottom, side, side)
    colors = [f"C{i}" for i in range(10)] if columns <= 10 else _tab20()
    for n, (fpr, tpr, label) in enumerate(curves):
        ax.plot(fpr, tpr, lw=1.6, color=colors[n % len(colors)], label=label)
    ax.plot([0, 1], [0, 1], color="0.6", lw=1.0, linestyle="--", label=labels[-1])
    ax.set_xlim(-0.01, 1.01)  # curves along an edge stay in sight
    ax.set_ylim(-0.01, 1.01)
    ax.grid(alpha=0.3)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    title = "ROC curve"
    if columns > 2:
        finite = [a for a in aucs if not math.isnan(a)]
        title += " (one vs rest" + (f", mean AUC {np.mean(finite):.3f})" if finite else ")")
    ax.set_title(title)
    if outside:
        where = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "frameon": False}
        drawn = ax.legend(fontsize=8, ncols=legend_columns, **where)
    else:
        drawn = ax.legend(fontsize=8, loc="lower right")
    for text in drawn.get_texts():
        text.set_parse_math(False)  # class names are not TeX
    if not curves:
        ax.text(0.5, 0.5, "no rows with scores", ha="center", va="center", color="0.4")
    return fig


def _tab20() -> list:
    from matplotlib import colormaps

    return list(colormaps["tab20"].colors)


@_locked
def learning_curves_figure(history: Sequence[dict[str, Any]], metric: str) -> PlotFigure:
    """Training against validation per epoch (fold means): the loss on the left, ``metric``
    (e.g. ``val_accuracy``, with ``train_accuracy`` where the history has it) on the right.
    A missing value breaks its line; each epoch is marked up to 40 epochs."""
    name = metric.removeprefix("val_")
    panels = [
        ("loss", ["train_loss", "val_loss"]),
        (name, [f"train_{name}", metric] if metric != name else [metric]),
    ]
    fig = PlotFigure(figsize=(10.0, 4.0))
    axes = [_curves_panel(fig, history, ylabel, keys) for ylabel, keys in panels]
    # placed once their tick labels are known: each leaves room for its own
    lefts = [_EDGE + _LABEL + _tick_labels_width(fig, ax) + _TICK for ax in axes]
    width, height = fig.get_size_inches()
    gap = 0.25
    panel = (width - sum(lefts) - 2 * gap) / 2
    bottom = _EDGE + _LABEL + _LINE + _TICK
    x = 0.0
    for ax, left in zip(axes, lefts, strict=True):
        x += left
        box = (x / width, bottom / height, panel / width, (height - bottom - _TITLE) / height)
        ax.set_position(box)
        x += panel + gap
    return fig


def _curves_panel(fig: Figure, history: Sequence[dict[str, Any]], ylabel: str, keys: list) -> Any:
    """Axes with one line per key the history has: ``train_*`` blue, validation orange."""
    epochs = [float(h.get("epoch", i + 1)) for i, h in enumerate(history)]
    marker = {"marker": "o", "markersize": 3.5} if len(epochs) <= 40 else {}
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    for key in keys:
        if any(key in h for h in history):
            values = [np.nan if h.get(key) is None else float(h[key]) for h in history]
            color, label = ("C0", "train") if key.startswith("train_") else ("C1", "validation")
            ax.plot(epochs, values, color=color, lw=1.8, label=label, **marker)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    ax.grid(alpha=0.3)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ylabel} (fold mean)")
    if ax.lines:
        ax.legend(fontsize=9)
    else:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", color="0.4",
                transform=ax.transAxes)  # fmt: skip
    return ax


def _tick_labels_width(fig: Figure, ax: Any) -> float:
    """The widest y tick label ``ax`` will draw, inches (its data limits are known by then)."""
    ticks = ax.get_yticks()
    labels = ax.yaxis.get_major_formatter().format_ticks(ticks)
    return _text_width(fig, labels, _TICK_SIZE)
