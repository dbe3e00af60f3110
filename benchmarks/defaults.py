"""Accuracy with the default settings, only the data and the model family given.

    python -m benchmarks.defaults [--out benchmarks/results/defaults.json]

Runs ``automl train`` for the three reference cases of the foundation issue: the CNN on
``builtin:digits``, the FNN on ``builtin:breast_cancer`` and the GRU on digits read as sequences of
8 rows (an NPZ of shape N×8×8), and prints CV and test accuracy against the goals.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = [
    ("builtin:digits", "cnn", 0.985),
    ("builtin:breast_cancer", "fnn", 0.97),
    ("{npz}", "gru", 0.97),
]


def digits_npz(folder: Path) -> Path:
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = folder / "digits_rows.npz"
    np.savez(path, X=digits.images.astype("float32"), y=digits.target)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="benchmarks/results/defaults.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        npz = digits_npz(Path(tmp))
        for source, family, goal in CASES:
            source = source.format(npz=npz)
            out = Path(tmp) / f"{family}.json"
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "orchestrator.cli",
                    "train",
                    "--data",
                    source,
                    "--model",
                    family,
                    "--no-tracking",
                    "--json",
                    str(out),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            payload = json.loads(out.read_text())
            acc = payload["cv"]["metrics"]["accuracy"]
            rows.append(
                {
                    "data": "digits as N×8×8 NPZ" if source.endswith(".npz") else source,
                    "model": family,
                    "cv_mean": acc["mean"],
                    "cv_std": acc["std"],
                    "test": payload["test"]["accuracy"],
                    "goal": goal,
                    "met": payload["test"]["accuracy"] >= goal,
                    "wall_s": round(time.perf_counter() - started, 1),
                }
            )
            r = rows[-1]
            print(
                f"{r['data']:<24} {family:<5} cv {r['cv_mean']:.4f} ± {r['cv_std']:.4f}  "
                f"test {r['test']:.4f}  goal {goal}  {'met' if r['met'] else 'MISSED'}  "
                f"{r['wall_s']} s",
                flush=True,
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
