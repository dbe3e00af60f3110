"""The figures: shapes, labels and failure messages (no MLflow)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from orchestrator.plots import confusion_matrix_figure, learning_curves_figure, roc_curve_figure


def _close(fig) -> None:
    fig.canvas.draw()  # catches rendering errors too
    plt.close(fig)


def test_confusion_matrix_figure_labels_and_counts():
    cm = np.array([[5, 1], [0, 4]])
    fig = confusion_matrix_figure(cm, ["no", "yes"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["no", "yes"]
    assert sorted(t.get_text() for t in ax.texts) == ["0", "1", "4", "5"]
    _close(fig)


def test_confusion_matrix_figure_rejects_wrong_shape():
    with pytest.raises(ValueError, match="must be 3x3 for 3 classes, got \\(2, 2\\)"):
        confusion_matrix_figure(np.eye(2), ["a", "b", "c"])


@pytest.mark.parametrize("k", [2, 3], ids=["binary", "one-vs-rest"])
def test_roc_curve_figure(k):
    rng = np.random.default_rng(0)
    y = np.arange(60) % k
    proba = rng.dirichlet(np.ones(k), size=60)
    proba[np.arange(60), y] += 1.0
    proba /= proba.sum(axis=1, keepdims=True)
    proba[0] = np.nan  # a row that was in no validation fold
    fig = roc_curve_figure(y, proba, [f"c{i}" for i in range(k)])
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert len(labels) == (1 if k == 2 else k)
    assert all("AUC 1.000" in label for label in labels)
    _close(fig)


def test_learning_curves_figure():
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_accuracy": 0.5 + e / 10}
        for e in range(1, 4)
    ]
    fig = learning_curves_figure(history, "val_accuracy")
    loss_ax, metric_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["train_loss", "val_loss"]
    assert list(metric_ax.lines[0].get_ydata()) == pytest.approx([0.6, 0.7, 0.8])
    _close(fig)


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
    if figures:
        assert (tmp_path / "roc_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
