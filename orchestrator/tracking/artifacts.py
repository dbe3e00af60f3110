"""A trial's cross-validation artifacts: CV metrics, confusion matrix, ROC, curves, errors."""

from __future__ import annotations

import csv
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


def write_csv(frame: pd.DataFrame, path: Path, index: bool = False) -> None:
    """``frame.to_csv(path, index=index)`` for the small tables a trial logs, through the csv
    module: the same file (floats as repr, NaN as an empty field) at about half of pandas' cost,
    which the driver's writer pays for every trial."""
    header = [str(c) for c in frame.columns]
    rows = frame.to_numpy(dtype=object).tolist()
    if index:
        header = [frame.index.name or "", *header]
        rows = [[label, *row] for label, row in zip(frame.index.tolist(), rows, strict=True)]
    with open(path, "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(header)
        out.writerows([["" if _is_nan(v) else v for v in row] for row in rows])


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def write_cv_figures(
    folder: Path,
    cv: CVResult,
    task: str,
    class_names: list[str] | None,
    metric: str | None = None,
) -> None:
    """A trial's PNGs: out-of-fold confusion matrix and ROC (classification), learning curves."""
    output, y, names = _oof(cv, task, class_names)
    _save_figures(folder, cv, task, output, y, names, metric)


def _save_figures(
    folder: Path,
    cv: CVResult,
    task: str,
    output: np.ndarray,
    y: np.ndarray,
    names: list[str] | None,
    metric: str | None,
    cm: np.ndarray | None = None,
) -> None:
    from models.metrics import confusion_matrix
    from orchestrator.plots import confusion_matrix_figure, learning_curves_figure, roc_curve_figure

    if task == "classification":
        if cm is None:
            cm = confusion_matrix(y, output.argmax(axis=1), output.shape[1])
        confusion_matrix_figure(cm, names).save(folder / "confusion_matrix.png")
        roc_curve_figure(y, output, names).save(folder / "roc_curve.png")
    metric = metric or ("val_accuracy" if task == "classification" else "val_r2")
    if cv.history:
        learning_curves_figure(cv.history, metric).save(folder / "learning_curves.png")


def _oof(
    cv: CVResult, task: str, class_names: list[str] | None
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """The out-of-fold outputs and targets of the rows some fold validated, and class names."""
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
    return output, y, names


def write_confusion(
    folder: Path, cm: np.ndarray, class_names: list[str], stem: str, figure: bool = True
) -> None:
    from orchestrator.plots import confusion_matrix_figure

    write_csv(confusion_frame(cm, class_names), folder / f"{stem}.csv", index=True)
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
    """Out-of-fold confusion matrix, error analysis, CV summary and cleaning report, and
    (``figures``) the PNGs of :func:`write_cv_figures`.

    ``figures=False`` keeps the tables and drops the PNGs, which are most of a trivial trial's
    tracking cost (``tracking.trial_figures``).
    """
    from models.metrics import confusion_matrix, error_analysis

    output, y, names = _oof(cv, task, class_names)
    cm = None
    if task == "classification":
        cm = confusion_matrix(y, output.argmax(axis=1), output.shape[1])
        write_confusion(folder, cm, names, "confusion_matrix", figure=False)
    if figures:
        _save_figures(folder, cv, task, output, y, names, metric, cm)
    write_csv(error_analysis(task, y, output, class_names=names), folder / "error_analysis.csv")
    summary = {
        k: {"mean": v["mean"], "std": v["std"], "per_fold": v["per_fold"]}
        for k, v in cv.summary().items()
    }
    (folder / "cv_summary.json").write_text(json.dumps(summary, indent=2, default=float))
    if cleaning is not None:
        report = cleaning.to_dict() if hasattr(cleaning, "to_dict") else dict(cleaning)
        (folder / "cleaning_report.json").write_text(json.dumps(report, indent=2, default=str))
