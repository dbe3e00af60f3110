"""The figures: what the PNGs show, their layout, and that drawing frees and shares nothing
(no MLflow)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import subprocess
import sys
import threading
import weakref

import numpy as np
import pytest
from PIL import Image

from orchestrator import plots
from orchestrator.plots import (
    PlotFigure,
    confusion_matrix_figure,
    learning_curves_figure,
    roc_curve_figure,
)


def _proba(k: int, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % k
    proba = rng.dirichlet(np.ones(k), size=n)
    proba[np.arange(n), y] += 1.0
    return y, proba / proba.sum(axis=1, keepdims=True)


def _history(epochs: int = 3, metric: str = "val_accuracy") -> list[dict]:
    return [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, metric: 0.5 + e / 10}
        for e in range(1, epochs + 1)
    ]


def _saved(fig: PlotFigure, tmp_path, name: str = "figure.png") -> np.ndarray:
    """Save ``fig`` as the tracking code does; the PNG's RGB pixels."""
    path = tmp_path / name
    fig.save(path)
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB")).astype(np.int64)


FIGURES = {
    "confusion": lambda: confusion_matrix_figure(np.array([[5, 1], [0, 4]]), ["no", "yes"]),
    "confusion-20-long-names": lambda: confusion_matrix_figure(
        np.random.default_rng(0).integers(0, 500, (20, 20)),
        [f"class {i} " + "x" * 30 for i in range(20)],
    ),
    "roc": lambda: roc_curve_figure(*_proba(3), ["a", "b", "c"]),
    "roc-binary": lambda: roc_curve_figure(*_proba(2), ["no", "yes"]),
    "roc-20-classes": lambda: roc_curve_figure(*_proba(20, 200), [f"class {i}" for i in range(20)]),
    "curves": lambda: learning_curves_figure(_history(), "val_accuracy"),
    "curves-regression": lambda: learning_curves_figure(
        [
            {"epoch": e, "train_loss": 1e5 / e, "val_loss": 1.3e5 / e, "val_rmse": 12345.678 / e}
            for e in range(1, 30)
        ],
        "val_rmse",
    ),  # fmt: skip
}


@pytest.mark.parametrize("draw", FIGURES.values(), ids=FIGURES.keys())
def test_figures_save_readable_non_blank_pngs(tmp_path, draw):
    fig = draw()
    pixels = _saved(fig, tmp_path)
    height, width, _ = pixels.shape
    assert np.allclose((width, height), fig.get_size_inches() * plots.DPI, atol=1)
    assert 300 <= width <= 1500 and 250 <= height <= 1500
    assert pixels.std() > 10  # not blank (a white image has 0)
    assert (pixels < 100).all(axis=-1).sum() > 500  # dark text and lines, not only light fills
    assert (pixels[0] == 255).all() and (pixels[:, -1] == 255).all()  # a white border


@pytest.mark.parametrize("draw", FIGURES.values(), ids=FIGURES.keys())
def test_every_label_lies_inside_the_figure(tmp_path, draw):
    # the axes are placed by hand: tick labels, axis labels, titles and legends must not be cut
    fig = draw()
    _saved(fig, tmp_path)
    renderer = fig.canvas.get_renderer()
    width, height = fig.get_size_inches() * plots.DPI
    for ax in fig.axes:
        box = ax.get_tightbbox(renderer)
        assert box.x0 >= 0 and box.y0 >= 0, (ax.get_title(), box)
        assert box.x1 <= width and box.y1 <= height, (ax.get_title(), box)


def _labels(texts) -> list[str]:
    return [t.get_text() for t in texts]


@pytest.mark.parametrize("k", [2, 10, 20], ids=["2-classes", "10-classes", "20-classes"])
def test_confusion_matrix_names_every_class_readably(tmp_path, k):
    names = [f"class {i}" for i in range(k)]
    fig = confusion_matrix_figure(np.eye(k, dtype=int) * 7, names)
    _saved(fig, tmp_path)
    ax = fig.axes[0]
    assert _labels(ax.get_xticklabels()) == names and _labels(ax.get_yticklabels()) == names
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == (
        f"confusion matrix (n={7 * k})",
        "predicted class",
        "true class",
    )
    renderer = fig.canvas.get_renderer()
    rows = sorted((t.get_window_extent(renderer) for t in ax.get_yticklabels()), key=lambda b: b.y0)
    assert all(a.y1 <= b.y0 + 1 for a, b in zip(rows, rows[1:], strict=False))  # no overlap
    assert min(t.get_fontsize() for t in ax.get_yticklabels()) >= 6


def test_confusion_matrix_has_a_colour_bar_and_shades_the_largest_share_darkest(tmp_path):
    cm = np.array([[40, 0, 0], [10, 30, 0], [5, 5, 20]])
    fig = confusion_matrix_figure(cm, ["a", "b", "c"])
    pixels = _saved(fig, tmp_path)
    ax, bar = fig.axes
    assert bar.get_ylabel() == "share of the true class" and bar.get_ylim() == (0.0, 1.0)

    def cell(i: int, j: int) -> np.ndarray:  # a patch off the cell's centre, away from its count
        x, y = ax.transData.transform((j - 0.3, i - 0.3))
        row = round(pixels.shape[0] - y)
        return pixels[row - 2 : row + 3, round(x) - 2 : round(x) + 3].reshape(-1, 3).mean(axis=0)

    full, empty, three_quarters = cell(0, 0), cell(0, 1), cell(1, 1)
    assert full.sum() < three_quarters.sum() < empty.sum()
    assert empty.min() > 240  # an empty cell is near-white


@pytest.mark.parametrize("k, numbers", [(30, True), (31, False)], ids=["30-classes", "31-classes"])
def test_confusion_matrix_counts_only_up_to_30_classes(k, numbers):
    cm = np.arange(k * k).reshape(k, k)
    ax = confusion_matrix_figure(cm, [str(i) for i in range(k)]).axes[0]
    expected = [str(v) for v in cm.ravel()] if numbers else []
    assert _labels(ax.texts) == expected


def test_confusion_matrix_counts_are_white_on_dark_cells():
    ax = confusion_matrix_figure(np.array([[9, 1], [5, 5]]), ["a", "b"]).axes[0]
    colors = [t.get_color() for t in ax.texts]
    assert colors[0] == "white" and colors[1] != "white" and colors[2] != "white"  # 0.9, 0.1, 0.5


def test_confusion_matrix_long_names_are_slanted_and_cut_short():
    cm = np.eye(10, dtype=int)
    short = confusion_matrix_figure(cm, [str(i) for i in range(10)])
    long = confusion_matrix_figure(cm, [f"{i} " + "x" * 60 for i in range(10)])
    assert short.axes[0].get_xticklabels()[0].get_rotation() == 0
    assert long.axes[0].get_xticklabels()[0].get_rotation() == 45
    assert _labels(long.axes[0].get_yticklabels())[3] == "3 " + "x" * 15 + "…"
    assert all((long.get_size_inches() > short.get_size_inches()).tolist())  # room for the names


def test_class_names_with_dollar_signs_are_not_tex(tmp_path):
    names = ["$5-$10", "$10-$20"]
    cm_fig = confusion_matrix_figure(np.eye(2, dtype=int), names)
    roc_fig = roc_curve_figure(*_proba(2), names)
    _saved(cm_fig, tmp_path, "cm.png")
    _saved(roc_fig, tmp_path, "roc.png")
    assert _labels(cm_fig.axes[0].get_xticklabels()) == names
    assert _labels(roc_fig.axes[0].get_legend().get_texts())[0].startswith("positive class $10-$20")


def test_confusion_matrix_figure_rejects_wrong_shape():
    with pytest.raises(ValueError, match="must be 3x3 for 3 classes, got \\(2, 2\\)"):
        confusion_matrix_figure(np.eye(2), ["a", "b", "c"])


@pytest.mark.parametrize("k", [2, 3, 10, 20], ids=["binary", "one-vs-rest", "10", "20"])
def test_roc_curve_figure_draws_one_curve_per_class_with_its_auc(k):
    from sklearn.metrics import roc_auc_score

    y, proba = _proba(k, 200)
    ax = roc_curve_figure(y, proba, [f"c{i}" for i in range(k)]).axes[0]
    classes = [1] if k == 2 else range(k)
    expected = [
        f"{'positive class ' if k == 2 else ''}c{i} (AUC {roc_auc_score(y == i, proba[:, i]):.3f})"
        for i in classes
    ]
    assert _labels(ax.get_legend().get_texts()) == [*expected, "chance (AUC 0.5)"]
    assert len(ax.lines) == len(expected) + 1
    assert len({tuple(line.get_color()) if not isinstance(line.get_color(), str)
                else line.get_color() for line in ax.lines[:-1]}) == len(expected)  # fmt: skip
    assert ax.get_xlabel() == "false positive rate" and ax.get_ylabel() == "true positive rate"
    assert ax.get_title().startswith("ROC curve") and (k == 2) == ("mean AUC" not in ax.get_title())


def test_roc_curve_figure_skips_rows_with_nan_scores():
    y, proba = _proba(3)
    with_nan = np.vstack([np.full((1, 3), np.nan), proba])
    names = ["a", "b", "c"]
    skipped = roc_curve_figure(np.r_[0, y], with_nan, names).axes[0]
    clean = roc_curve_figure(y, proba, names).axes[0]
    assert _labels(skipped.get_legend().get_texts()) == _labels(clean.get_legend().get_texts())
    for a, b in zip(skipped.lines, clean.lines, strict=True):
        assert np.array_equal(a.get_xydata(), b.get_xydata())
    nothing = roc_curve_figure(y, np.full_like(proba, np.nan), names).axes[0]  # no crash
    assert len(nothing.lines) == 1 and _labels(nothing.texts) == ["no rows with scores"]


def test_roc_curve_of_a_class_never_seen_says_so():
    y, proba = _proba(3)
    ax = roc_curve_figure(np.where(y == 2, 0, y), proba, ["a", "b", "c"]).axes[0]
    assert _labels(ax.get_legend().get_texts())[2] == "c (AUC n/a, one class only)"


def test_roc_points_match_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    score = np.round(rng.random(200) + 0.5 * y, 1)  # ties as well
    fpr, tpr, auc = plots._roc_points(y, score)
    assert auc == pytest.approx(roc_auc_score(y, score))
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.isnan(plots._roc_points(np.ones(5, dtype=int), rng.random(5))[2])  # one class only


def _lines(ax) -> dict[str, np.ndarray]:
    return {line.get_label(): line.get_xydata() for line in ax.lines}


def test_learning_curves_train_against_validation_per_metric():
    history = _history(5)
    for h in history:
        h["train_accuracy"] = h["val_accuracy"] + 0.05
    loss, metric = learning_curves_figure(history, "val_accuracy").axes
    epochs = np.arange(1.0, 6.0)
    assert (loss.get_title(), loss.get_xlabel(), loss.get_ylabel()) == (
        "loss (fold mean)",
        "epoch",
        "loss",
    )
    assert (metric.get_title(), metric.get_xlabel(), metric.get_ylabel()) == (
        "accuracy (fold mean)",
        "epoch",
        "accuracy",
    )
    assert np.allclose(_lines(loss)["train"], np.c_[epochs, 1 / epochs])
    assert np.allclose(_lines(loss)["validation"], np.c_[epochs, 1.2 / epochs])
    assert np.allclose(_lines(metric)["validation"], np.c_[epochs, 0.5 + epochs / 10])
    assert np.allclose(_lines(metric)["train"], np.c_[epochs, 0.55 + epochs / 10])
    assert _labels(metric.get_legend().get_texts()) == ["train", "validation"]
    assert all(float(t).is_integer() for t in loss.get_xticks())  # whole epochs


def test_learning_curves_break_at_missing_values():
    gaps = [dict(h, val_loss=None if h["epoch"] in (3, 4) else h["val_loss"]) for h in _history(6)]
    gaps[0]["val_accuracy"] = float("nan")
    loss, metric = learning_curves_figure(gaps, "val_accuracy").axes
    assert np.isnan(_lines(loss)["validation"][2:4, 1]).all()  # matplotlib breaks the line there
    assert np.isfinite(_lines(loss)["validation"][[0, 1, 4, 5], 1]).all()
    assert np.isnan(_lines(metric)["validation"][0, 1])


def test_learning_curves_single_epoch_and_missing_metric():
    loss, metric = learning_curves_figure(_history(1), "val_accuracy").axes
    assert all(line.get_marker() == "o" for line in loss.lines + metric.lines)  # a point shows
    loss, metric = learning_curves_figure(_history(4), "val_f1_macro").axes
    assert set(_lines(loss)) == {"train", "validation"}
    assert not metric.lines and _labels(metric.texts) == ["no values"]


@pytest.mark.slow  # 220 figures: ~15 s
def test_figures_are_freed_and_memory_does_not_grow(tmp_path):
    """Nothing keeps a saved figure alive (no pyplot figure manager): 100 figures later, after a
    collection, they are all gone and the process holds no more memory than after the first few."""

    def rss_mb() -> float:
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):  # freed memory back to the system
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    cm = np.array([[5, 1], [0, 4]])
    for _ in range(20):  # allocator arenas, font and text caches
        confusion_matrix_figure(cm, ["no", "yes"]).save(tmp_path / "warm.png")
    gc.collect()
    before = rss_mb()
    refs = []
    for i in range(100):
        fig = confusion_matrix_figure(cm, ["no", "yes"])
        fig.save(tmp_path / f"{i % 3}.png")
        refs.append(weakref.ref(fig))
        del fig
        if i % 10 == 9:  # as the collector would: what stays is what a leak keeps
            gc.collect()
    gc.collect()
    assert sum(ref() is not None for ref in refs) == 0
    # a leaked figure keeps its 640x500 RGBA canvas (1.3 MB): 100 of them would be ~130 MB
    assert rss_mb() - before < 25
    assert "matplotlib.pyplot" not in sys.modules or not _open_pyplot_figures()


def _open_pyplot_figures() -> list:
    from matplotlib._pylab_helpers import Gcf

    return Gcf.get_all_fig_managers()


def test_two_threads_drawing_at_once_get_the_same_pictures(tmp_path):
    y, proba = _proba(10, 300)
    names = [str(i) for i in range(10)]

    def draw_set(folder) -> None:
        folder.mkdir()
        cm = np.zeros((10, 10), dtype=int)
        np.add.at(cm, (y, proba.argmax(axis=1)), 1)
        confusion_matrix_figure(cm, names).save(folder / "confusion_matrix.png")
        roc_curve_figure(y, proba, names).save(folder / "roc_curve.png")
        learning_curves_figure(_history(8), "val_accuracy").save(folder / "learning_curves.png")

    draw_set(tmp_path / "alone")
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for rep in range(3):
                draw_set(tmp_path / f"thread{n}-{rep}")
        except BaseException as err:  # noqa: BLE001  (reported below)
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    for name in ("confusion_matrix.png", "roc_curve.png", "learning_curves.png"):
        with Image.open(tmp_path / "alone" / name) as image:
            expected = np.asarray(image)
        for folder in sorted(tmp_path.glob("thread*")):
            with Image.open(folder / name) as image:
                assert np.array_equal(np.asarray(image), expected), folder / name


def test_drawing_never_touches_pyplot():
    code = (
        "import sys, tempfile, pathlib, numpy as np\n"
        "from orchestrator import plots\n"
        "folder = pathlib.Path(tempfile.mkdtemp())\n"
        "plots.confusion_matrix_figure(np.eye(2, dtype=int), ['a', 'b']).save(folder / 'c.png')\n"
        "plots.learning_curves_figure([{'epoch': 1, 'train_loss': 1.0}], 'val_accuracy')"
        ".save(folder / 'l.png')\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("figures", [True, False], ids=["with-figures", "tables-only"])
def test_cv_artifacts_with_and_without_figures(tmp_path, figures):
    from orchestrator.crossval import CVResult
    from orchestrator.tracking.artifacts import write_cv_artifacts

    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), size=30)
    cv = CVResult(
        per_fold=[{"accuracy": 0.5}, {"accuracy": 0.7}],
        best_epochs=[2, 3],
        oof_output=proba,
        oof_true=rng.integers(0, 3, size=30),
        history=[{"epoch": 1.0, "train_loss": 1.0, "val_loss": 1.1, "val_accuracy": 0.4}],
    )
    write_cv_artifacts(tmp_path, cv, "classification", ["a", "b", "c"], figures=figures)
    written = {p.name for p in tmp_path.iterdir()}
    assert {"confusion_matrix.csv", "error_analysis.csv", "cv_summary.json"} <= written
    pngs = {"confusion_matrix.png", "roc_curve.png", "learning_curves.png"}
    assert (pngs <= written) if figures else not (pngs & written)
    for name in sorted(pngs) if figures else []:
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.width > 300


def test_cv_figures_of_a_regression_are_its_learning_curves(tmp_path):
    from orchestrator.crossval import CVResult
    from orchestrator.tracking.artifacts import write_cv_figures

    rng = np.random.default_rng(0)
    cv = CVResult(
        per_fold=[{"r2": 0.5}, {"r2": 0.7}],
        best_epochs=[2, 2],
        oof_output=rng.normal(size=30),
        oof_true=rng.normal(size=30),
        history=[
            {"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "val_r2": e / 3}
            for e in (1.0, 2.0)
        ],  # fmt: skip
    )
    write_cv_figures(tmp_path, cv, "regression", None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["learning_curves.png"]
