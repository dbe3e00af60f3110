"""The final model two ways, from one cross-validation: the refit (``search.refit: best``: the
configuration trained again on all non-test data) against the fold ensemble (``folds``: the k
fold models as one, their probabilities averaged).

    python -m benchmarks.refit_vs_folds [--only digits,breast_cancer,italypower_like]

For each set, one run of ``automl train``'s steps with default settings: cross-validation, then
both final models from the same folds, each tested once on the same fixed test set. Reports
test accuracy, the refit's extra training time, and predict latency (the whole test set, and
one row, median of repeats) of each. Writes ``benchmarks/results/refit_vs_folds.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from benchmarks import defaults as bd

SETS = ("digits", "breast_cancer", "italypower_like", "frequency_classes")


def latency_ms(model: Any, X: Any, lengths: Any, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict_output(X, lengths)
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def case_files(name: str, folder: Path) -> tuple[str, str, str | None]:
    if name == "digits":  # digits as a table (64 pixel columns), a stratified 75/25 split
        case = bd.sklearn_table("digits")(folder, False)
    else:
        case = bd.CASES[name](folder, False)
    return str(case.train), str(case.test), case.target


def run_case(name: str) -> dict[str, Any]:
    from orchestrator.config import Config, apply_overrides
    from orchestrator.crossval import cross_validate
    from orchestrator.pipeline import prepare_run, refit_and_test, test_model, torch_threads

    with tempfile.TemporaryDirectory() as tmp:
        train, test, target = case_files(name, Path(tmp))
        overrides = {"data.source": train, "data.test_source": test, "tracking.enabled": False}
        if target:
            overrides["data.target"] = target
        run = prepare_run(apply_overrides(Config(), overrides))
        config = run.config
        started = time.perf_counter()
        cv = cross_validate(run.prepared, config)
        with torch_threads(config.training.num_threads):
            for _ in cv:
                pass
            cv_s = time.perf_counter() - started
            folds = test_model(run, cv.ensemble(), None)
            started = time.perf_counter()
            refit = refit_and_test(run, config, cv.result.refit_epochs)
            refit_s = time.perf_counter() - started
            X, lengths = run.test.X, run.test.lengths
            one = X.iloc[:1] if hasattr(X, "iloc") else X[:1]
            one_len = None if lengths is None else lengths[:1]
            row = {
                "name": name,
                "family": run.prepared.family,
                "folds": len(cv.folds),
                "n_test": int(run.test.n_samples),
                "cv_s": round(cv_s, 1),
                "refit_train_s": round(refit_s, 1),
                "refit_accuracy": refit.test_metrics["accuracy"],
                "folds_accuracy": folds.test_metrics["accuracy"],
                "refit_batch_ms": latency_ms(refit.predictor, X, lengths),
                "folds_batch_ms": latency_ms(folds.predictor, X, lengths),
                "refit_row_ms": latency_ms(refit.predictor, one, one_len, 21),
                "folds_row_ms": latency_ms(folds.predictor, one, one_len, 21),
            }
    print(json.dumps(row), flush=True)
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "Final model from the same cross-validation: refit vs the k fold models averaged "
        f"({time.strftime('%Y-%m-%d')}, python -m benchmarks.refit_vs_folds)",
        "",
        "| data | family | k | test acc refit | test acc folds | refit training s | "
        "batch ms refit / folds | one row ms refit / folds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['family']} | {r['folds']} | {r['refit_accuracy']:.4f} | "
            f"{r['folds_accuracy']:.4f} | {r['refit_train_s']} | "
            f"{r['refit_batch_ms']:.1f} / {r['folds_batch_ms']:.1f} | "
            f"{r['refit_row_ms']:.2f} / {r['folds_row_ms']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(SETS))
    parser.add_argument("--out", default="benchmarks/results/refit_vs_folds.json")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    rows = [run_case(name) for name in args.only.split(",")]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    out.with_suffix(".md").write_text(markdown(rows))
    print(markdown(rows))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
