"""The one command: ``python -m benchmarks.run [--quick] [--only P1,B1] [--reps N] --out DIR``.

Writes ``DIR/latest.json`` and ``DIR/latest.md`` (after every benchmark, so a long run that is
stopped keeps what it measured). A benchmark that misses a goal is profiled once with cProfile
(driver and every trial inside the Ray workers; see ``benchmarks/profiling.py``)
(``--profile``/``--no-profile`` to force either way; quick mode does not profile by default).
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.common import BenchContext

BENCHMARKS = {
    "P1": "p1_search",
    "B1": "b1_peer",
    "B2": "b2_limit",
    "B3": "b3_overhead",
    "B4": "b4_scale",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 repetition and smaller sizes (a smoke test of a few minutes)",
    )
    parser.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated benchmarks to run (default: all of {','.join(BENCHMARKS)})",
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        help="repetitions of every benchmark (default: P1 1, B1, B2 and B4 3, B3 2; quick 1)",
    )
    parser.add_argument("--out", default="benchmarks/results", help="folder for latest.json/.md")
    parser.add_argument(
        "--profile",
        dest="profile",
        action="store_true",
        default=None,
        help="profile benchmarks that miss a goal (default: on unless --quick)",
    )
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs)")
    args = parser.parse_args(argv)
    only = [b.strip().upper() for b in args.only.split(",") if b.strip()]
    unknown = [b for b in only if b not in BENCHMARKS]
    if unknown:
        parser.error(f"--only takes {', '.join(BENCHMARKS)}; got {', '.join(unknown)}")
    if args.reps is not None and args.reps < 1:
        parser.error(f"--reps must be at least 1, got {args.reps}")
    args.only = only
    if args.profile is None:
        args.profile = not args.quick
    return args


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Path(args.out)
    workdir = Path(tempfile.mkdtemp(prefix="automl-bench-"))
    ctx = BenchContext(
        quick=args.quick, reps=args.reps, workdir=workdir, profile=args.profile, log=_log
    )
    started = time.perf_counter()
    doc: dict[str, Any] = {
        "suite": "automl benchmarks (issue 6)",
        "mode": "quick" if args.quick else "full",
        "reps": args.reps,
        "only": args.only,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": report.machine(),
        "benchmarks": {},
        "goals": [],
    }
    _log(f"scratch folder {workdir}")
    try:
        for key in args.only:
            module = importlib.import_module(f"benchmarks.{BENCHMARKS[key]}")
            bench_started = time.perf_counter()
            try:
                result = module.run(ctx)
            except Exception as err:  # keep the other benchmarks' figures
                traceback.print_exc()
                result = {"title": key, "error": f"{type(err).__name__}: {err}"[:2000], "goals": []}
            result["wall_s"] = time.perf_counter() - bench_started
            missed = [g for g in result["goals"] if g["passed"] is False]
            if missed and ctx.profile:
                _log(f"{key}: {len(missed)} goal(s) missed; profiling one run with cProfile")
                try:
                    result["profile"] = module.profile(ctx)
                except Exception as err:
                    traceback.print_exc()
                    result["profile"] = {"error": f"{type(err).__name__}: {err}"[:2000]}
            doc["benchmarks"][key] = result
            doc["goals"] += [{"benchmark": key, **g} for g in result["goals"]]
            doc["total_s"] = time.perf_counter() - started
            report.write(doc, out)
            _log(f"{key} done in {result['wall_s']:.0f} s; wrote {out / 'latest.json'}")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    for g in doc["goals"]:
        status = {True: "PASS", False: "FAIL", None: "n/a"}[g["passed"]]
        _log(f"{status}  {g['label']}: {g['value']} (goal {g['op']} {g['target']})")
    return doc


if __name__ == "__main__":
    main(sys.argv[1:])
