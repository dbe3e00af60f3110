"""Test accuracy of ``automl`` with its default settings against a simple baseline.

    python -m benchmarks.defaults [--only wine,gunpoint_like] [--quick] [--verb train|search]
        [--num-samples 6] [--extra-set KEY=VALUE ...] [--out benchmarks/results/defaults.json]

Every case writes a fixed train/test split to files and runs the project as a user would:
``python -m orchestrator.cli train --data TRAIN --test-data TEST [--target COL] --no-tracking
--json OUT`` (no ``--model``: the default ``model auto``; ``--verb search`` runs ``search
--num-samples N`` and reads the refit's test accuracy). The baseline is measured in the same run
on exactly the same split:

- tables (scikit-learn's wine, breast_cancer, iris with a stratified 75/25 split, seed 0, and a
  generated penguins-like table): ``LogisticRegression(max_iter=5000)`` after ``StandardScaler``,
  with median/most-frequent imputation and one-hot encoding where the table needs them;
- series (``benchmarks/series_data.py``): 1-NN with Euclidean distance in numpy. Univariate
  series are z-normalised one by one first (the UCR archive's convention); the multichannel
  ones are not (the UEA convention; digits' pixel values carry the class). Variable-length
  series are padded with 0 after their length, to the longer of the train and test widths.

One line per case as it finishes, then a markdown table. Results go to ``--out`` (JSON: a header
with the commit, date and machine, and one row per case) and the table to the same path with
the suffix ``.md``; both are rewritten after every case.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import series_data as sd

REPO = Path(__file__).resolve().parents[1]
TABLE_SPLIT_SEED = 0
SERIES_SEED = 0


@dataclass(frozen=True)
class PreparedCase:
    """A case's split on disk, its sizes and the baseline's test accuracy on it."""

    train: Path
    test: Path
    target: str | None  # the target column of a table; None for series files
    n_train: int
    n_test: int
    steps: int | None  # time steps of the train file (None for tables)
    test_steps: int | None
    features: int
    baseline: str
    baseline_accuracy: float


# --------------------------------------------------------------------------- tables
def penguins_like(seed: int = 0) -> pd.DataFrame:
    """344 penguins of 3 species, shaped like the Palmer penguins table: four measurements with
    about 2% missing each, an int64 ``year``, and string ``island`` and ``sex`` with missing
    values. The target column is ``species``."""
    rng = np.random.default_rng(seed)
    species = {  # count, island counts, means of bill length/depth, flipper length, mass
        "Adelie": (152, {"Biscoe": 44, "Dream": 56, "Torgersen": 52}, (38.8, 18.3, 190, 3700)),
        "Chinstrap": (68, {"Dream": 68}, (48.8, 18.4, 196, 3733)),
        "Gentoo": (124, {"Biscoe": 124}, (47.5, 15.0, 217, 5076)),
    }
    stds = np.array([3.0, 1.1, 6.8, 450.0])
    # each measurement and its decimals, as in the original table
    measurements = {"bill_length_mm": 1, "bill_depth_mm": 1, "flipper_length_mm": 0}
    measurements["body_mass_g"] = -1
    parts = []
    for name, (count, islands, means) in species.items():
        sex = rng.choice(["male", "female"], count)
        male = np.where(sex == "male", 1.0, -1.0)[:, None]
        size = rng.normal(size=(count, 1))  # one body size drives all four measurements
        z = 0.7 * male + 0.4 * size + 0.55 * rng.normal(size=(count, 4))
        values = np.asarray(means, dtype=float) + z * stds
        part = pd.DataFrame(values, columns=list(measurements)).round(measurements)
        part.insert(0, "island", np.repeat(list(islands), list(islands.values())))
        part.insert(0, "species", name)
        part["sex"] = sex
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame["year"] = rng.choice(np.array([2007, 2008, 2009], dtype=np.int64), len(frame))
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    missing = {**dict.fromkeys(measurements, 0.02), "island": 0.02, "sex": 0.03}
    for column, share in missing.items():
        frame.loc[rng.random(len(frame)) < share, column] = np.nan
    return frame


def table_baseline(features: pd.DataFrame) -> tuple[str, Any]:
    """Logistic regression after scaling; imputation and one-hot encoding when needed."""
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    logreg = LogisticRegression(max_iter=5000)
    numeric = list(features.select_dtypes("number").columns)
    categorical = [c for c in features.columns if c not in numeric]
    if not categorical and not features.isna().any().any():
        return "logreg", make_pipeline(StandardScaler(), logreg)
    columns = make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        (
            make_pipeline(
                SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
            ),
            categorical,
        ),
    )
    return "logreg+impute+onehot", make_pipeline(columns, logreg)


def _table_case(folder: Path, name: str, frame: pd.DataFrame, target: str) -> PreparedCase:
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        frame, test_size=0.25, stratify=frame[target], random_state=TABLE_SPLIT_SEED
    )
    paths = folder / f"{name}_train.csv", folder / f"{name}_test.csv"
    train.to_csv(paths[0], index=False)
    test.to_csv(paths[1], index=False)
    # the baseline reads the files back, so it sees the same dtypes and missing cells as automl
    train, test = (pd.read_csv(p) for p in paths)
    y_train, y_test = train.pop(target), test.pop(target)
    label, model = table_baseline(train)
    accuracy = float(model.fit(train, y_train).score(test, y_test))
    return PreparedCase(
        *paths, target, len(train), len(test), None, None, train.shape[1], label, accuracy
    )


def sklearn_table(name: str) -> Callable[[Path, bool], PreparedCase]:
    def prepare(folder: Path, quick: bool) -> PreparedCase:
        from sklearn import datasets

        frame = getattr(datasets, f"load_{name}")(as_frame=True).frame  # features + 'target'
        return _table_case(folder, name, frame, "target")

    return prepare


def penguins_case(folder: Path, quick: bool) -> PreparedCase:
    return _table_case(folder, "penguins_like", penguins_like(), "species")


# --------------------------------------------------------------------------- series
SERIES: dict[str, tuple[Callable[..., Any], tuple[int, int] | None, bool]] = {
    # name: (generator, (n_train, n_test) at full size or None for a fixed set, z-normalise)
    "digits_rows": (sd.digits_rows, None, False),
    "gunpoint_like": (sd.gunpoint_like, (50, 150), True),
    "italypower_like": (sd.italypower_like, (67, 1029), True),
    "shapelets": (sd.shapelets, (100, 300), True),
    "frequency_classes": (sd.frequency_classes, (150, 300), True),
    "long_series": (sd.long_series, (100, 200), True),
    "variable_length_multichannel": (sd.variable_length_multichannel, (270, 370), False),
}


def make_series(name: str, quick: bool) -> sd.SeriesSet | sd.VariableLengthSet:
    """The series set ``name``; ``quick`` halves the synthetic sets' train and test sizes."""
    make, sizes, _ = SERIES[name]
    if sizes is None:
        return make()
    n_train, n_test = (n // 2 for n in sizes) if quick else sizes
    return make(SERIES_SEED, n_train=n_train, n_test=n_test)


def series_case(name: str) -> Callable[[Path, bool], PreparedCase]:
    def prepare(folder: Path, quick: bool) -> PreparedCase:
        data = make_series(name, quick)
        train, test = sd.write_split(folder, name, data)
        if isinstance(data, sd.VariableLengthSet):
            data = data.X_train, data.y_train, data.X_test, data.y_test
        znorm = SERIES[name][2]
        accuracy = sd.one_nn_accuracy(*data, znorm=znorm)
        X_train, X_test = data[0], data[2]
        sizes, steps = (len(X_train), len(X_test)), (X_train.shape[1], X_test.shape[1])
        features = 1 if X_train.ndim == 2 else X_train.shape[2]
        label = "1-NN ED" + (" z-norm" if znorm else "")
        return PreparedCase(train, test, None, *sizes, *steps, features, label, accuracy)

    return prepare


CASES: dict[str, Callable[[Path, bool], PreparedCase]] = {
    "wine": sklearn_table("wine"),
    "breast_cancer": sklearn_table("breast_cancer"),
    "iris": sklearn_table("iris"),
    "penguins_like": penguins_case,
    **{name: series_case(name) for name in SERIES},
}


# --------------------------------------------------------------------------- the project
def run_automl(
    case: PreparedCase, verb: str, num_samples: int, extra_sets: list[str], workdir: Path
) -> dict[str, Any]:
    """Run ``automl VERB`` on the case's files; its accuracies, or the error."""
    out = workdir / "result.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "orchestrator.cli", verb, "--data", str(case.train)]
    cmd += ["--test-data", str(case.test), "--no-tracking", "--json", str(out)]
    if case.target:
        cmd += ["--target", case.target]
    if verb == "search":
        cmd += ["--num-samples", str(num_samples), "--storage", str(workdir / "ray_results")]
    for override in extra_sets:
        cmd += ["--set", override]
    proc = subprocess.run(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    if proc.returncode != 0 or not out.exists():
        tail = proc.stderr.strip().splitlines()[-15:]
        print("\n".join(f"    | {line}" for line in tail), file=sys.stderr, flush=True)
        return {"error": f"exit status {proc.returncode}: " + (tail[-1] if tail else "")}
    payload = json.loads(out.read_text())
    if verb == "search":
        best = payload.get("best") or {}
        accuracy = (best.get("cv") or {}).get("accuracy", {})
        return {
            "model": (best.get("config") or {}).get("model.family", "auto"),
            "test_accuracy": (best.get("test") or {}).get("accuracy"),
            "cv_accuracy": accuracy.get("mean"),
            "cv_std": accuracy.get("std"),
        }
    accuracy = payload["cv"]["metrics"]["accuracy"]
    return {
        "model": payload["model"],
        "test_accuracy": payload["test"]["accuracy"],
        "cv_accuracy": accuracy["mean"],
        "cv_std": accuracy["std"],
    }


# --------------------------------------------------------------------------- report
def header(args: argparse.Namespace) -> dict[str, Any]:
    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "verb": args.verb,
        "num_samples": args.num_samples if args.verb == "search" else None,
        "quick": args.quick,
        "extra_set": args.extra_set,
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _steps(row: dict[str, Any]) -> str:
    if row["steps"] is None:
        return "-"
    if row["test_steps"] != row["steps"]:
        return f"{row['steps']}/{row['test_steps']}"
    return str(row["steps"])


def case_line(row: dict[str, Any]) -> str:
    shape = f"{row['n_train']}/{row['n_test']} T={_steps(row)} F={row['features']}"
    project = (
        f"FAILED ({row['error']})"
        if row.get("error")
        else f"{row['model']} test {_fmt(row['test_accuracy'])} cv {_fmt(row['cv_accuracy'])}"
    )
    margin = "" if row["margin"] is None else f"margin {row['margin']:+.4f}  "
    return (
        f"{row['name']:<29} {shape:<24} {project}  {row['baseline']} "
        f"{row['baseline_accuracy']:.4f}  {margin}{row['verdict']}  {row['wall_s']:.0f} s"
    )


def markdown(doc: dict[str, Any]) -> str:
    h = doc["header"]
    lines = [
        f"automl `{h['verb']}` with default settings against a baseline on the same split "
        f"(commit {h['commit']}{' + changes' if h['dirty'] else ''}, {h['date']}, "
        f"{h['machine']['processor']}, {h['machine']['cpu_count']} CPUs"
        + (", quick sizes" if h["quick"] else "")
        + (f", --set {' '.join(h['extra_set'])}" if h["extra_set"] else "")
        + ")",
        "",
        "| data | N train/test | T | F | model | CV acc | test acc | baseline | baseline acc "
        "| margin | verdict | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        margin = "-" if r["margin"] is None else f"{r['margin']:+.4f}"
        lines.append(
            f"| {r['name']} | {r['n_train']}/{r['n_test']} | {_steps(r)} | {r['features']} "
            f"| {r.get('model') or '-'} | {_fmt(r.get('cv_accuracy'))} "
            f"| {_fmt(r.get('test_accuracy'))} | {r['baseline']} | {r['baseline_accuracy']:.4f} "
            f"| {margin} | {r['verdict']} | {r['wall_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def write(doc: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(doc))


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.defaults",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only", help=f"comma-separated cases (default: all of {', '.join(CASES)})"
    )
    parser.add_argument("--quick", action="store_true", help="half-size synthetic series sets")
    parser.add_argument("--verb", choices=["train", "search"], default="train")
    parser.add_argument("--num-samples", type=int, default=6, help="trials of --verb search")
    parser.add_argument(
        "--extra-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to automl as --set KEY=VALUE (repeatable)",
    )
    parser.add_argument("--out", default="benchmarks/results/defaults.json")
    args = parser.parse_args(argv)
    args.only = [c.strip() for c in args.only.split(",") if c.strip()] if args.only else list(CASES)
    unknown = [c for c in args.only if c not in CASES]
    if unknown:
        parser.error(f"--only takes {', '.join(CASES)}; got {', '.join(unknown)}")
    if args.num_samples < 1:
        parser.error(f"--num-samples must be at least 1, got {args.num_samples}")
    return args


def run_case(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    case = CASES[name](workdir, args.quick)
    started = time.perf_counter()
    project = run_automl(case, args.verb, args.num_samples, args.extra_set, workdir)
    row: dict[str, Any] = {
        "name": name,
        "n_train": case.n_train,
        "n_test": case.n_test,
        "steps": case.steps,
        "test_steps": case.test_steps,
        "features": case.features,
        "model": None,
        "test_accuracy": None,
        "cv_accuracy": None,
        "cv_std": None,
        "error": None,
        **project,
        "baseline": case.baseline,
        "baseline_accuracy": case.baseline_accuracy,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    test = row["test_accuracy"]
    row["margin"] = None if test is None else test - case.baseline_accuracy
    if row["margin"] is None:
        row["verdict"] = "FAILED"
    else:
        row["verdict"] = "at/above baseline" if row["margin"] >= -1e-9 else "BELOW"
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Path(args.out)
    doc: dict[str, Any] = {"header": header(args), "rows": []}
    with tempfile.TemporaryDirectory(prefix="automl-defaults-") as tmp:
        for name in args.only:
            workdir = Path(tmp) / name
            workdir.mkdir()
            row = run_case(name, args, workdir)
            doc["rows"].append(row)
            print(case_line(row), flush=True)
            write(doc, out)
    print()
    print(markdown(doc), end="")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return doc


if __name__ == "__main__":
    main(sys.argv[1:])
