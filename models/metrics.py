"""Evaluation metrics for classification (from probabilities) and regression (from values)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from orchestrator.errors import ConfigError

# scikit-learn is imported where it is used (regression scores, per-class reports): a trial
# worker scoring classification folds so never imports it (orchestrator.folds).


def _proba(output: np.ndarray) -> np.ndarray:
    """Probabilities as float64 rows that sum to one (float32 softmax drifts a little)."""
    p = np.clip(np.asarray(output, dtype=np.float64), 1e-15, 1.0)
    return p / p.sum(axis=1, keepdims=True)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``, ties sharing their average rank (as scipy's rankdata)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve as the Mann-Whitney statistic: the probability that a random
    positive scores above a random negative, ties counted half (equal to the trapezoidal area
    under scikit-learn's ``roc_curve``)."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    ranks = _average_ranks(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _roc_auc(y: np.ndarray, p: np.ndarray, k: int) -> float:
    """ROC AUC (binary on p[:, 1], else one-vs-rest macro); NaN when a class is missing.

    The values of scikit-learn's ``roc_auc_score`` (``multi_class="ovr"``, macro average),
    computed from ranks: ~50x quicker for 10 classes, which matters because every fold of every
    trial is scored (tests/test_metrics.py compares the two).
    """
    if k < 2 or len(np.unique(y)) < k or not np.isin(y, np.arange(k)).all():
        return float("nan")
    if k == 2:
        return _binary_auc(y == 1, p[:, 1])
    return float(np.mean([_binary_auc(y == c, p[:, c]) for c in range(k)]))


def _confusion(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    keep = (y >= 0) & (y < k) & (pred >= 0) & (pred < k)
    return np.bincount(y[keep] * k + pred[keep], minlength=k * k).reshape(k, k)


def _macro_prf(cm: np.ndarray) -> tuple[float, float, float]:
    """Macro precision, recall and F1 over the classes seen in the truth or the predictions,
    0 where a ratio is 0/0 (scikit-learn's ``average="macro", zero_division=0``)."""
    tp = np.diag(cm).astype(np.float64)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    seen = (predicted + actual) > 0
    tp, predicted, actual = tp[seen], predicted[seen], actual[seen]

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    precision, recall = ratio(tp, predicted), ratio(tp, actual)
    f1 = ratio(2 * tp, predicted + actual)
    return float(precision.mean()), float(recall.mean()), float(f1.mean())


def compute_metrics(
    task: str, y_true: np.ndarray, output: np.ndarray, n_classes: int | None = None
) -> dict[str, float]:
    """Metrics of one prediction set.

    Classification (``output`` = probabilities ``(N, K)``): accuracy, precision_macro, recall_macro,
    f1_macro, roc_auc, log_loss, with scikit-learn's definitions, computed in numpy (every fold
    of every trial is scored: scikit-learn's input checks made this ~30 ms per 10-class fold).
    Regression (``output`` = values ``(N,)``): mse, rmse, mae, r2.
    """
    y = np.asarray(y_true)
    if task == "regression":
        from sklearn import metrics as skm
        from sklearn.exceptions import UndefinedMetricWarning

        pred = np.asarray(output, dtype=np.float64).reshape(len(y))
        y = y.astype(np.float64)
        mse = float(skm.mean_squared_error(y, pred))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            r2 = float(skm.r2_score(y, pred)) if len(y) >= 2 else float("nan")
        return {
            "mse": mse,
            "rmse": float(np.sqrt(mse)),
            "mae": float(skm.mean_absolute_error(y, pred)),
            "r2": r2,
        }
    if task != "classification":
        raise ConfigError(f"task must be one of classification, regression, got {task!r}")
    p = _proba(output)
    k = int(n_classes or p.shape[1])
    y = y.astype(np.int64)
    pred = p.argmax(axis=1)
    precision, recall, f1 = _macro_prf(_confusion(y, pred, max(k, p.shape[1])))
    return {
        "accuracy": float(np.mean(pred == y)),
        "precision_macro": precision,
        "recall_macro": recall,
        "f1_macro": f1,
        "roc_auc": _roc_auc(y, p, k),
        "log_loss": _log_loss(y, p),
    }


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log probability of the true class (``p`` from :func:`_proba`)."""
    return float(-np.mean(np.log(p[np.arange(len(y)), y])))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """The ``(K, K)`` confusion matrix; rows are true classes, columns predicted ones."""
    y, pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    return _confusion(y, pred, int(n_classes))


def per_class_metrics(
    y_true: np.ndarray, proba: np.ndarray, class_names: Sequence[str]
) -> list[dict[str, float | str | int]]:
    """Precision, recall, F1 and support of every class (``proba`` may also be predictions)."""
    from sklearn import metrics as skm

    proba = np.asarray(proba)
    pred = proba.argmax(axis=1) if proba.ndim == 2 else proba.astype(np.int64)
    labels = list(range(len(class_names)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        np.asarray(y_true), pred, labels=labels, zero_division=0
    )
    return [
        {
            "class": str(name),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    ]


def error_analysis(
    task: str,
    y_true: np.ndarray,
    output: np.ndarray,
    class_names: Sequence[str] | None = None,
    top: int = 20,
) -> pd.DataFrame:
    """The ``top`` worst-predicted samples, worst first.

    Classification: index, true, predicted, confidence (probability of the predicted class) and
    error (1 - probability of the true class). Regression: index, true, predicted, abs_error.
    """
    y = np.asarray(y_true)
    if task == "regression":
        pred = np.asarray(output, dtype=np.float64).reshape(len(y))
        frame = pd.DataFrame(
            {
                "index": np.arange(len(y)),
                "true": y,
                "predicted": pred,
                "abs_error": np.abs(pred - y),
            }
        )
        frame = frame.sort_values("abs_error", ascending=False, kind="stable").head(top)
        return frame.reset_index(drop=True)
    p = np.asarray(output, dtype=np.float64)
    y = y.astype(np.int64)
    error = 1.0 - p[np.arange(len(y)), y]
    # the worst rows first, ties in row order (as a stable descending sort), before any frame
    worst = np.argsort(-error, kind="stable")[:top]
    pred = p[worst].argmax(axis=1)
    true = y[worst]
    if class_names is not None:
        names = np.asarray([str(c) for c in class_names], dtype=object)
        true, pred_out = names[true], names[pred]
    else:
        pred_out = pred
    return pd.DataFrame(
        {
            "index": worst,
            "true": true,
            "predicted": pred_out,
            "confidence": p[worst, pred],
            "error": error[worst],
        }
    )


LIGHT_METRICS = {
    "classification": ("accuracy", "log_loss"),
    "regression": ("mse", "rmse", "mae", "r2"),
}


def light_metrics(task: str, y_true: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """The cheap subset of :func:`compute_metrics` (numpy only), for every-epoch reports.

    scikit-learn's metrics validate their input at a cost of milliseconds per call, which adds
    up to seconds per trial when every fold is scored every epoch.
    """
    y = np.asarray(y_true)
    if task == "regression":
        pred = np.asarray(output, dtype=np.float64).reshape(len(y))
        err = pred - y.astype(np.float64)
        mse = float(np.mean(err**2))
        var = float(np.var(y)) if len(y) >= 2 else 0.0
        return {
            "mse": mse,
            "rmse": float(np.sqrt(mse)),
            "mae": float(np.mean(np.abs(err))),
            "r2": 1.0 - mse / var if var > 0 else float("nan"),
        }
    p = _proba(output)
    y = y.astype(np.int64)
    return {"accuracy": float(np.mean(p.argmax(axis=1) == y)), "log_loss": _log_loss(y, p)}
