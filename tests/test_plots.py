"""The figures: what the PNGs show, their failure messages, and the drawing helpers (no MLflow)."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from orchestrator import chart, glyphs, plots
from orchestrator.chart import TAB10, blues, nice_ticks, png_bytes
from orchestrator.plots import (
    confusion_matrix_figure,
    learning_curves_figure,
    roc_curve_figure,
)


def _pixels(fig: chart.Figure) -> np.ndarray:
    return np.asarray(fig.image.convert("RGB")).astype(np.int64)


def _count(pixels: np.ndarray, color: tuple | np.ndarray) -> int:
    """Pixels of exactly ``color`` (lines are antialiased, but their cores keep the colour)."""
    return int((pixels == np.asarray(color)).all(axis=-1).sum())


def _proba(k: int, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % k
    proba = rng.dirichlet(np.ones(k), size=n)
    proba[np.arange(n), y] += 1.0
    return y, proba / proba.sum(axis=1, keepdims=True)


def _history(epochs: int = 3) -> list[dict]:
    return [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_accuracy": 0.5 + e / 10}
        for e in range(1, epochs + 1)
    ]


@pytest.mark.parametrize(
    "draw, size",
    [
        (lambda: confusion_matrix_figure(np.array([[5, 1], [0, 4]]), ["no", "yes"]), None),
        (lambda: roc_curve_figure(*_proba(3), ["a", "b", "c"]), (600, 520)),
        (lambda: learning_curves_figure(_history(), "val_accuracy"), (1000, 400)),
    ],
    ids=["confusion", "roc", "curves"],
)
def test_figures_save_readable_non_blank_pngs(tmp_path, draw, size):
    path = tmp_path / "figure.png"
    fig = draw()
    fig.save(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.load()
        assert image.mode == "RGB"
        assert image.size == (size or image.size)
        assert 300 <= image.width <= 1200 and 250 <= image.height <= 1200
        saved = np.asarray(image)
    assert np.array_equal(saved, _pixels(fig))  # lossless, the image that was drawn
    assert saved.std() > 10  # not blank (a white image has 0)
    assert (saved < 100).all(axis=-1).sum() > 500  # dark text and lines, not only light fills


def test_png_bytes_round_trips_any_rgb_image():
    noise = np.random.default_rng(0).integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    image = Image.fromarray(noise, "RGB")
    with Image.open(io.BytesIO(png_bytes(image))) as decoded:
        assert np.array_equal(np.asarray(decoded), noise)
    grey = Image.fromarray(noise[..., 0], "L")  # other modes are written as RGB
    with Image.open(io.BytesIO(png_bytes(grey))) as decoded:
        assert decoded.mode == "RGB" and np.array_equal(np.asarray(decoded)[..., 1], noise[..., 0])


def test_confusion_matrix_shades_the_largest_count_darkest():
    cm = np.array([[40, 0, 0], [10, 30, 0], [5, 5, 20]])
    pixels = _pixels(confusion_matrix_figure(cm, ["a", "b", "c"]))
    # cell (0, 0) holds its whole row: a square in the darkest blue, at the heatmap's top left
    # (the colour bar's top row has that colour too, one pixel per column)
    full = (pixels == blues(1.0)).all(axis=-1)
    cols = np.flatnonzero(full.sum(axis=0) > 10)
    rows = np.flatnonzero(full[:, cols].sum(axis=1) > 10)
    cell = cols.max() - cols.min() + 1
    assert cell > 40 and rows.max() - rows.min() + 1 == cell
    dark = pixels[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    empty = pixels[rows.min() : rows.max() + 1, cols.min() + cell + 2 : cols.max() + cell]  # (0, 1)
    assert dark.sum(axis=-1).mean() < 0.5 * empty.sum(axis=-1).mean()
    assert _count(empty, blues(0.0)) > 0.8 * empty.shape[0] * empty.shape[1]


@pytest.mark.parametrize("k, numbers", [(30, True), (31, False)], ids=["30-classes", "31-classes"])
def test_confusion_matrix_numbers_only_up_to_30_classes(k, numbers):
    names = [f"class {i}" for i in range(k)]
    # equal shares, different counts: only the numbers (and the title) tell the two apart
    seven, eight = (_pixels(confusion_matrix_figure(np.full((k, k), n), names)) for n in (7, 8))
    below_title = slice(40, None)
    assert (not np.array_equal(seven[below_title], eight[below_title])) == numbers


def test_confusion_matrix_long_names_are_slanted_and_cut_short():
    cm = np.eye(10, dtype=int)
    short = confusion_matrix_figure(cm, [str(i) for i in range(10)]).image
    long = confusion_matrix_figure(cm, [f"{i} " + "x" * 60 for i in range(10)]).image
    cut = confusion_matrix_figure(cm, [f"{i} " + "x" * 15 + "…" for i in range(10)]).image
    assert long.width > short.width and long.height > short.height  # room for slanted names
    assert long.size == cut.size and np.array_equal(np.asarray(long), np.asarray(cut))


def test_confusion_matrix_figure_rejects_wrong_shape():
    with pytest.raises(ValueError, match="must be 3x3 for 3 classes, got \\(2, 2\\)"):
        confusion_matrix_figure(np.eye(2), ["a", "b", "c"])


@pytest.mark.parametrize("k", [2, 3, 10], ids=["binary", "one-vs-rest", "ten-classes"])
def test_roc_curve_figure_draws_one_curve_per_class(k):
    y, proba = _proba(k)
    pixels = _pixels(roc_curve_figure(y, proba, [f"c{i}" for i in range(k)]))
    curves = 1 if k == 2 else k
    assert all(_count(pixels, color) > 20 for color in TAB10[:curves])
    unused = [color for color in TAB10[curves:] if color != (127, 127, 127)]  # grey: antialiasing
    assert all(_count(pixels, color) == 0 for color in unused)


def test_roc_curve_figure_skips_rows_with_nan_scores():
    y, proba = _proba(3)
    with_nan = np.vstack([np.full((1, 3), np.nan), proba])
    names = ["a", "b", "c"]
    skipped = roc_curve_figure(np.r_[0, y], with_nan, names)
    assert np.array_equal(_pixels(skipped), _pixels(roc_curve_figure(y, proba, names)))
    everything_nan = roc_curve_figure(y, np.full_like(proba, np.nan), names)  # no curves, no crash
    assert all(_count(_pixels(everything_nan), color) == 0 for color in TAB10[:3])


def test_roc_points_match_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    score = np.round(rng.random(200) + 0.5 * y, 1)  # ties as well
    fpr, tpr, auc = plots._roc_points(y, score)
    assert auc == pytest.approx(roc_auc_score(y, score))
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.isnan(plots._roc_points(np.ones(5, dtype=int), rng.random(5))[2])  # one class only


def _halves(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return pixels[:, : pixels.shape[1] // 2], pixels[:, pixels.shape[1] // 2 :]


def test_learning_curves_loss_left_metric_right():
    loss, metric = _halves(_pixels(learning_curves_figure(_history(5), "val_accuracy")))
    train, val, green = TAB10[0], TAB10[1], TAB10[2]
    assert _count(loss, train) > 20 and _count(loss, val) > 20 and _count(loss, green) == 0
    assert _count(metric, green) > 20 and _count(metric, train) == _count(metric, val) == 0


def test_learning_curves_break_at_missing_values():
    full = _history(6)
    gaps = [dict(h, val_loss=None if h["epoch"] in (3, 4) else h["val_loss"]) for h in full]
    gaps[0]["val_accuracy"] = float("nan")
    drawn = {name: _pixels(learning_curves_figure(h, "val_accuracy")) for name, h in
             [("full", full), ("gaps", gaps)]}  # fmt: skip
    orange = {name: _count(_halves(p)[0], TAB10[1]) for name, p in drawn.items()}
    green = {name: _count(_halves(p)[1], TAB10[2]) for name, p in drawn.items()}
    assert 0 < orange["gaps"] < orange["full"] and 0 < green["gaps"] < green["full"]


def test_learning_curves_single_epoch_and_missing_metric():
    one = _halves(_pixels(learning_curves_figure(_history(1), "val_accuracy")))
    assert _count(one[0], TAB10[0]) > 5 and _count(one[1], TAB10[2]) > 5  # dots, no lines
    missing = _halves(_pixels(learning_curves_figure(_history(4), "val_f1_macro")))
    assert _count(missing[0], TAB10[0]) > 20 and _count(missing[1], TAB10[2]) == 0


@pytest.mark.parametrize(
    "lo, hi, integer, expected",
    [
        (0.0, 1.0, False, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0.03, 0.97, False, [0.2, 0.4, 0.6, 0.8]),
        (-0.05, 0.55, False, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]),
        (-0.01, 1.37, False, [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]),
        (1.0, 20.0, True, [5.0, 10.0, 15.0, 20.0]),
        (1.0, 3.0, True, [1.0, 2.0, 3.0]),
    ],
)
def test_nice_ticks(lo, hi, integer, expected):
    assert nice_ticks(lo, hi, 5, integer=integer) == pytest.approx(expected)


def test_without_the_truetype_font_the_default_font_is_used(monkeypatch):
    caches = [glyphs._font_path, glyphs._font, glyphs._glyph, glyphs.text_mask]
    for cache in caches:
        cache.cache_clear()
    monkeypatch.setattr(glyphs, "_font_path", lambda: None)
    try:
        pixels = _pixels(confusion_matrix_figure(np.array([[5, 1], [0, 4]]), ["no", "yes"]))
        assert (pixels < 100).all(axis=-1).sum() > 100  # text still drawn
    finally:
        for cache in caches[1:]:
            cache.cache_clear()


def test_warm_up_sets_most_glyphs_a_trial_figure_needs():
    caches = [glyphs._font, glyphs._glyph, glyphs.text_mask]

    def new_glyphs() -> int:
        before = glyphs._glyph.cache_info().misses
        confusion_matrix_figure(np.array([[50, 3], [7, 40]]), ["0", "1"])
        learning_curves_figure(
            [{"epoch": 1, "train_loss": 0.5, "val_accuracy": 0.9}], "val_accuracy"
        )
        return glyphs._glyph.cache_info().misses - before

    for cache in caches:
        cache.cache_clear()
    cold = new_glyphs()
    for cache in caches:
        cache.cache_clear()
    plots.warm_up()
    assert glyphs._font.cache_info().currsize >= 2  # label and tick sizes
    assert new_glyphs() <= cold // 10


def test_drawing_does_not_import_matplotlib():
    code = (
        "import sys, numpy as np\n"
        "from orchestrator.plots import confusion_matrix_figure, learning_curves_figure\n"
        "confusion_matrix_figure(np.eye(2, dtype=int), ['a', 'b'])\n"
        "learning_curves_figure([{'epoch': 1, 'train_loss': 1.0}], 'val_accuracy')\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


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
