"""Metrics against scikit-learn on handcrafted examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from models import compute_metrics, confusion_matrix, error_analysis, per_class_metrics

Y3 = np.array([0, 0, 1, 1, 2, 2, 2])
P3 = np.array(
    [
        [0.8, 0.1, 0.1],
        [0.3, 0.6, 0.1],
        [0.2, 0.7, 0.1],
        [0.1, 0.5, 0.4],
        [0.1, 0.1, 0.8],
        [0.5, 0.2, 0.3],
        [0.2, 0.2, 0.6],
    ]
)


def test_multiclass_matches_sklearn() -> None:
    m = compute_metrics("classification", Y3, P3.astype(np.float32), n_classes=3)
    pred = P3.argmax(1)
    assert set(m) == {
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "roc_auc",
        "log_loss",
    }
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(Y3, pred))
    assert m["precision_macro"] == pytest.approx(skm.precision_score(Y3, pred, average="macro"))
    assert m["recall_macro"] == pytest.approx(skm.recall_score(Y3, pred, average="macro"))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(Y3, pred, average="macro"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(Y3, P3, multi_class="ovr"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(Y3, P3), rel=1e-6)


@pytest.mark.parametrize("k", [2, 3, 10])
def test_numpy_metrics_equal_scikit_learn_on_random_predictions(k) -> None:
    """compute_metrics is numpy; on random data (tied scores, classes never predicted, one
    never true in the last case, near-zero probabilities) it agrees with scikit-learn."""
    rng = np.random.default_rng(k)
    for case in range(6):
        n = int(rng.integers(k * 3, 300))
        y = rng.integers(0, k, n)
        y[:k] = np.arange(k)  # every class is present in the truth
        logits = rng.normal(size=(n, k)) * (0.1 if case == 0 else 3.0)
        logits = np.round(logits, 1)  # ties in the scores
        if case == 1:
            logits[:, -1] -= 100.0  # one class is never predicted; some p ~ 1e-44
        p = np.exp(logits - logits.max(1, keepdims=True))
        p = (p / p.sum(1, keepdims=True)).astype(np.float32)
        if case == 2:
            y[y == k - 1] = 0  # a class missing from the truth: no AUC
        m = compute_metrics("classification", y, p, n_classes=k)
        q = np.clip(p.astype(np.float64), 1e-15, 1.0)
        q /= q.sum(1, keepdims=True)
        pred = q.argmax(1)
        prf = skm.precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
        assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
        assert m["precision_macro"] == pytest.approx(prf[0], abs=1e-12)
        assert m["recall_macro"] == pytest.approx(prf[1], abs=1e-12)
        assert m["f1_macro"] == pytest.approx(prf[2], abs=1e-12)
        assert m["log_loss"] == pytest.approx(skm.log_loss(y, q, labels=range(k)), rel=1e-9)
        if case == 2:
            assert math.isnan(m["roc_auc"])
            continue
        auc = (
            skm.roc_auc_score(y, q[:, 1])
            if k == 2
            else skm.roc_auc_score(y, q, multi_class="ovr", average="macro", labels=range(k))
        )
        assert m["roc_auc"] == pytest.approx(auc, abs=1e-9)
        assert np.array_equal(
            confusion_matrix(y, pred, k), skm.confusion_matrix(y, pred, labels=range(k))
        )


def test_binary_auc_uses_positive_column() -> None:
    y = np.array([0, 1, 1, 0, 1])
    p1 = np.array([0.2, 0.9, 0.4, 0.6, 0.7])
    m = compute_metrics("classification", y, np.stack([1 - p1, p1], 1))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p1))
    assert m["accuracy"] == pytest.approx(0.6)


def test_missing_class_gives_nan_auc_not_an_error() -> None:
    y = np.array([0, 0, 1, 1])
    m = compute_metrics("classification", y, P3[:4], n_classes=3)
    assert math.isnan(m["roc_auc"])
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, P3[:4], labels=[0, 1, 2]))
    single = compute_metrics("classification", np.array([1, 1]), np.array([[0.4, 0.6]] * 2))
    assert math.isnan(single["roc_auc"]) and single["accuracy"] == 1.0


def test_regression_matches_sklearn() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.5, 1.5, 3.5, 3.0], dtype=np.float32)
    m = compute_metrics("regression", y, p)
    mse = skm.mean_squared_error(y, p)
    assert m == pytest.approx(
        {
            "mse": mse,
            "rmse": mse**0.5,
            "mae": skm.mean_absolute_error(y, p),
            "r2": skm.r2_score(y, p),
        }
    )


def test_confusion_matrix_rows_are_true_classes() -> None:
    cm = confusion_matrix(np.array([0, 0, 1]), np.array([0, 1, 1]), n_classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]


def test_per_class_metrics() -> None:
    rows = per_class_metrics(Y3, P3, ["a", "b", "c"])
    p, r, f, s = skm.precision_recall_fscore_support(Y3, P3.argmax(1), zero_division=0)
    assert [row["class"] for row in rows] == ["a", "b", "c"]
    assert [row["support"] for row in rows] == s.tolist()
    assert [row["f1"] for row in rows] == pytest.approx(f)
    assert [row["precision"] for row in rows] == pytest.approx(p)


def test_error_analysis_classification_worst_first() -> None:
    frame = error_analysis("classification", Y3, P3, class_names=["a", "b", "c"], top=3)
    assert list(frame.columns) == ["index", "true", "predicted", "confidence", "error"]
    assert frame["index"].tolist() == [1, 5, 3]  # true-class probability 0.3, 0.3 (tie), 0.5
    assert frame.loc[0, "true"] == "a" and frame.loc[0, "predicted"] == "b"
    assert frame.loc[0, "confidence"] == pytest.approx(0.6)
    assert frame.loc[0, "error"] == pytest.approx(0.7)


def test_error_analysis_regression() -> None:
    frame = error_analysis(
        "regression", np.array([1.0, 2.0, 3.0]), np.array([1.1, 4.0, 2.5]), top=2
    )
    assert list(frame.columns) == ["index", "true", "predicted", "abs_error"]
    assert frame["index"].tolist() == [1, 2]
    assert frame["abs_error"].tolist() == pytest.approx([2.0, 0.5])


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_light_metrics_agree_with_scikit_learn(task):
    from models.metrics import light_metrics

    rng = np.random.default_rng(3)
    if task == "classification":
        y = rng.integers(0, 3, size=50)
        out = rng.dirichlet(np.ones(3), size=50)
    else:
        y = rng.normal(size=50)
        out = y + rng.normal(scale=0.3, size=50)
    light = light_metrics(task, y, out)
    full = compute_metrics(task, y, out, 3 if task == "classification" else None)
    for name, value in light.items():
        assert value == pytest.approx(full[name], rel=1e-9, abs=1e-12), name
