"""A trial's cross-validation artifacts: CV metrics, confusion matrix, ROC, curves, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from orchestrator.crossval import CVResult


def cv_metrics(cv: CVResult) -> dict[str, float]:
    """``cv_NAME_mean``, ``cv_NAME_std`` and ``foldK_NAME`` for every metric, plus epochs."""
    out: dict[str, float] = {}
    for name, stats in cv.summary().items():
        out[f"cv_{name}_mean"] = float(stats["mean"])
        out[f"cv_{name}_std"] = float(stats["std"])
        for k, value in enumerate(stats["per_fold"], start=1):
            out[f"fold{k}_{name}"] = float(value)
    for k, epoch in enumerate(cv.best_epochs, start=1):
        out[f"fold{k}_best_epoch"] = float(epoch)
    out["refit_epochs"] = float(cv.refit_epochs)
    return out


def confusion_frame(cm: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(np.asarray(cm, dtype=np.int64), index=class_names, columns=class_names)
    frame.index.name = "true"
    return frame


def write_confusion(
    folder: Path, cm: np.ndarray, class_names: list[str], stem: str, figure: bool = True
) -> None:
    from orchestrator.plots import confusion_matrix_figure

    confusion_frame(cm, class_names).to_csv(folder / f"{stem}.csv")
    if figure:
        confusion_matrix_figure(cm, class_names).save(folder / f"{stem}.png")


def write_cv_artifacts(
    folder: Path,
    cv: CVResult,
    task: str,
    class_names: list[str] | None,
    cleaning: Any = None,
    metric: str | None = None,
    figures: bool = True,
) -> None:
    """Out-of-fold confusion matrix, ROC, learning curves, error analysis, cleaning report.

    ``figures=False`` keeps the tables and drops the PNGs, which are most of a trivial trial's
    tracking cost (``tracking.trial_figures``).
    """
    from models import confusion_matrix, error_analysis
    from orchestrator.plots import learning_curves_figure, roc_curve_figure

    output, y = np.asarray(cv.oof_output), np.asarray(cv.oof_true)
    seen = ~np.isnan(output).any(axis=1) if output.ndim == 2 else ~np.isnan(output)
    output, y = output[seen], y[seen]  # rows that were in no validation fold (time series)
    names = None
    if task == "classification":
        k = output.shape[1]
        names = (
            [str(c) for c in class_names]
            if class_names and len(class_names) == k
            else [str(i) for i in range(k)]
        )
        cm = confusion_matrix(y, output.argmax(axis=1), k)
        write_confusion(folder, cm, names, "confusion_matrix", figure=figures)
        if figures:
            roc_curve_figure(y, output, names).save(folder / "roc_curve.png")
    metric = metric or ("val_accuracy" if task == "classification" else "val_r2")
    if cv.history and figures:
        learning_curves_figure(cv.history, metric).save(folder / "learning_curves.png")
    error_analysis(task, y, output, class_names=names).to_csv(
        folder / "error_analysis.csv", index=False
    )
    summary = {
        k: {"mean": v["mean"], "std": v["std"], "per_fold": v["per_fold"]}
        for k, v in cv.summary().items()
    }
    (folder / "cv_summary.json").write_text(json.dumps(summary, indent=2, default=float))
    if cleaning is not None:
        report = cleaning.to_dict() if hasattr(cleaning, "to_dict") else dict(cleaning)
        (folder / "cleaning_report.json").write_text(json.dumps(report, indent=2, default=str))
