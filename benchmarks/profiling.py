"""Where the time goes: cProfile of the driver and of every trial inside the Ray workers.

A profiled search runs in its own child process. The driver is profiled as a whole (Ray start,
data preparation, MLflow parent run, ``Tuner.fit``, refit); each trial is profiled inside its
worker by swapping ``orchestrator.trial.run_trial`` for :func:`profiled_run_trial`, which wraps the
real trainable and writes one ``.prof`` file per trial. The summary gives the cumulative seconds of
named stages per trial (training steps, validation, fold set-up, ``tune.report``, imports; the
trials' MLflow runs are written by a thread of the driver, which cProfile does not follow: B3
measures that writer) and the functions with the most self time, so that a missed goal is
explained from a measurement rather than a guess.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import time
from pathlib import Path
from typing import Any

from benchmarks.common import child_main, median, run_child

ENV_DIR = "AUTOML_BENCH_PROFILE_DIR"

# label: (path suffix of the file, function name); cumulative seconds
TRIAL_STAGES: dict[str, tuple[str, str]] = {
    "whole trial (run_trial)": ("orchestrator/trial.py", "run_trial"),
    "training steps (Trainer/FusedTrainer.train_epoch)": ("models/", "train_epoch"),
    "validation (folds.evaluate)": ("orchestrator/folds.py", "evaluate"),
    "fold set-up (folds.fit_fold, cached per worker)": ("orchestrator/folds.py", "fit_fold"),
    "fold split (make_folds)": ("data/splitting.py", "make_folds"),
    "out-of-fold result (CrossValidation._finish)": ("orchestrator/crossval.py", "_finish"),
    "tune.report": ("ray/train/_internal/session.py", "report"),
    "imports inside the trial": ("<frozen importlib._bootstrap>", "_find_and_load"),
}
DRIVER_STAGES: dict[str, tuple[str, str]] = {
    "whole search (run_search)": ("orchestrator/search.py", "run_search"),
    "Ray start (ensure_ray)": ("orchestrator/ray_adapter.py", "ensure_ray"),
    "data preparation (prepare_run)": ("orchestrator/pipeline.py", "prepare_run"),
    "MLflow parent run (start_tracking)": ("orchestrator/search.py", "start_tracking"),
    "driver-fitted folds (precompute_folds)": ("orchestrator/folds.py", "precompute_folds"),
    "Tuner.fit (all trials)": ("ray/tune/tuner.py", "fit"),
    "refit and test": ("orchestrator/pipeline.py", "refit_and_test"),
    "MLflow refit logging (log_refit)": ("orchestrator/tracking/registry.py", "log_refit"),
    "imports in the driver": ("<frozen importlib._bootstrap>", "_find_and_load"),
}


def profiled_run_trial(
    point: dict[str, Any],
    *,
    prepared: Any,
    base_config: Any,
    **kwargs: Any,
) -> None:
    """The real trainable under cProfile; one ``.prof`` file per trial in ``$ENV_DIR``."""
    import orchestrator.trial as trial

    # in a worker the module is freshly imported, so run_trial is the real one
    real = getattr(trial, "_real_run_trial", trial.run_trial)
    folder = Path(os.environ[ENV_DIR])
    prof = cProfile.Profile()
    prof.enable()
    try:
        real(point, prepared=prepared, base_config=base_config, **kwargs)
    finally:
        prof.disable()
        prof.dump_stats(folder / f"trial-{os.getpid()}-{time.time_ns()}.prof")


def patch_trainable(folder: Path) -> None:
    """Make ``run_search`` submit :func:`profiled_run_trial` (set before Ray starts)."""
    import orchestrator.trial as trial

    folder.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_DIR] = str(folder)  # Ray workers inherit the driver's environment
    if not hasattr(trial, "_real_run_trial"):
        trial._real_run_trial = trial.run_trial
        trial.run_trial = profiled_run_trial


def stage_seconds(stats: pstats.Stats, stages: dict[str, tuple[str, str]]) -> dict[str, float]:
    """Cumulative seconds of each named stage (all matching functions summed)."""
    out = dict.fromkeys(stages, 0.0)
    for (filename, _, name), (_, _, _, cumtime, _) in stats.stats.items():
        for label, (suffix, func) in stages.items():
            if name == func and (
                filename.endswith(suffix) or suffix.endswith("/") and suffix in filename
            ):
                out[label] += cumtime
    return out


def top_self(stats: pstats.Stats, n: int = 10, per: int = 1) -> list[list[Any]]:
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:n]
    return [
        [f"{Path(f).name}:{line} {name}", round(tt / per, 4)]
        for (f, line, name), (_, _, tt, _, _) in rows
    ]


def summarize(folder: Path, driver_prof: Path) -> dict[str, Any]:
    files = sorted(folder.glob("trial-*.prof"))
    if not files:
        return {"error": f"no trial profiles in {folder}"}
    per_trial = [stage_seconds(pstats.Stats(str(f)), TRIAL_STAGES) for f in files]
    pids = [f.name.split("-")[1] for f in files]
    first = {pid: i for i, pid in reversed(list(enumerate(pids)))}  # first trial of each worker
    later = [s for i, s in enumerate(per_trial) if i not in first.values()] or per_trial
    combined = pstats.Stats(*[str(f) for f in files])
    driver = pstats.Stats(str(driver_prof))
    return {
        "trials_profiled": len(files),
        "workers": len(first),
        "trial_stage_s_median": {
            k: round(median([s[k] for s in per_trial]), 4) for k in TRIAL_STAGES
        },
        "trial_stage_s_median_excluding_first_per_worker": {
            k: round(median([s[k] for s in later]), 4) for k in TRIAL_STAGES
        },
        "trial_top_self_s_per_trial": top_self(combined, per=len(files)),
        "driver_stage_s": {k: round(v, 3) for k, v in stage_seconds(driver, DRIVER_STAGES).items()},
        "driver_top_self_s": top_self(driver),
    }


def profile_search(config: dict[str, Any], cwd: Path, refit: bool = False) -> dict[str, Any]:
    """Run one search (given as ``Config.model_dump()``) under cProfile in a child process."""
    payload = {"kind": "profile", "config": config, "folder": str(cwd), "refit": refit}
    return run_child("profiling", payload, cwd)


def _child(payload: dict[str, Any]) -> dict[str, Any]:
    from orchestrator.config import validate_config
    from orchestrator.search import ensure_ray, run_search

    folder = Path(payload["folder"])
    patch_trainable(folder / "trials")
    config = validate_config(payload["config"], "profile payload")
    driver_prof = folder / "driver.prof"
    prof = cProfile.Profile()
    started = time.perf_counter()
    prof.enable()
    try:
        ensure_ray()
        run_search(
            config,
            name="profile",
            storage=str(folder / "ray_results"),
            refit=bool(payload["refit"]),
        )
    finally:
        prof.disable()
        prof.dump_stats(driver_prof)
    wall = time.perf_counter() - started
    return {"wall_s": wall, **summarize(folder / "trials", driver_prof)}


if __name__ == "__main__":
    child_main(_child)
