"""B3 overhead: what a trial costs beyond its own training, and what MLflow logging adds.

* Orchestration rate: our search over a near-empty trial (iris, 2 folds, 1 epoch, 8 units), with
  MLflow on and off, and Ray Tune's raw rate with a function that reports once (reuse_actors on).
  Rates are trials per second once Ray is up: over the whole search (workers' start-up included)
  and steady-state (between the first and the last trial completion).
* MLflow cost: B1's digits search with tracking on and off. The goal's figure is the CPU time
  per trial of the driver's writer thread (which logs every trial's run) as a share of a
  trial's time: what logging takes from the trials on a machine they keep busy. The writer's
  busy wall time (which also holds its waits for the store's disk, the GIL and a core) and the
  wall-time difference of the two searches (one-time costs included) are reported beside it.
* Both with the default ``tracking.trial_figures: best`` (PNGs only for a trial that is the best
  so far when it ends) and with ``all`` (PNGs for every trial).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CORES,
    BenchContext,
    alternate,
    child_main,
    digits_config,
    goal,
    median,
    ratio,
    run_child,
    search_config,
    timed_search,
)
from orchestrator.config import apply_overrides

DEFAULT_REPS = 2
# *_on: tracking with the default tracking.trial_figures (best); *_all: PNGs for every trial
CONTENDERS = [
    "trivial_on",
    "trivial_all",
    "trivial_off",
    "raw_tune",
    "digits_on",
    "digits_all",
    "digits_off",
]


# --quick (the harness's smoke test) runs the two contenders of the goals' own figures only:
# each is a child process that starts its own Ray (~10-15 s each on 2 cores); the figures that
# compare with tracking off or all figures are then None
QUICK_CONTENDERS = ["trivial_on", "digits_on"]


def sizes(ctx: BenchContext) -> dict[str, int]:
    return {"trials": 8 if ctx.quick else 40, "digits_epochs": 3 if ctx.quick else 20}


def payload(ctx: BenchContext, who: str) -> dict[str, Any]:
    folder = ctx.scratch(f"b3-{who}")
    tracking = who.endswith(("_on", "_all"))
    return {
        "kind": who.rsplit("_", 1)[0] if who != "raw_tune" else "raw_tune",
        **sizes(ctx),
        "tracking": tracking,
        "figures": "all" if who.endswith("_all") else "best",
        "folder": str(folder),
        "tracking_uri": ctx.tracking_uri(folder) if tracking else None,
    }


def per_trial_cost(on: dict, off: dict) -> float | None:
    """Extra core-seconds per trial with tracking on (wall difference × concurrent trials)."""
    if on["n_trials"] != off["n_trials"] or not on["n_trials"]:
        return None
    return (on["search_s"] - off["search_s"]) * min(CORES, on["n_trials"]) / on["n_trials"]


def run(ctx: BenchContext) -> dict[str, Any]:
    reps = ctx.repetitions(DEFAULT_REPS)
    rows = []
    for rep in range(reps):
        contenders = QUICK_CONTENDERS if ctx.quick else CONTENDERS
        row: dict[str, Any] = {"rep": rep, "order": alternate(rep, contenders)}
        for who in row["order"]:
            ctx.log(f"B3 rep {rep + 1}/{reps}: {who}")
            row[who] = run_child("b3_overhead", payload(ctx, who), ctx.scratch(f"b3-{who}"))
        for kind in ("raw_tune", "trivial_on", "trivial_all", "trivial_off"):
            if kind in row:
                row[f"{kind}_rate"] = ratio(row[kind]["n_trials"], row[kind]["search_s"])
        for suffix in ("", "_all"):
            on = suffix or "_on"
            if f"digits{on}" not in row or "digits_off" not in row:  # (--quick)
                continue
            trial_s = row["digits_off"]["trial_time_mean_s"]
            row[f"trivial_mlflow{suffix}_s_per_trial"] = per_trial_cost(
                row[f"trivial{on}"], row["trivial_off"]
            )
            cost = per_trial_cost(row[f"digits{on}"], row["digits_off"])
            row[f"digits_mlflow{suffix}_s_per_trial"] = cost
            row[f"digits_mlflow{suffix}_pct"] = None if cost is None else 100 * cost / trial_s
        rows.append(row)

    def med(key: str, field: str | None = None) -> float | None:
        """The reps' median of ``key`` (its ``field``); None where no rep measured it."""
        return median([(r.get(key) or {}).get(field) if field else r.get(key) for r in rows])

    figures = {
        "trials": sizes(ctx)["trials"],
        "ours_tracking_on_trials_per_s": med("trivial_on_rate"),
        "ours_tracking_on_steady_trials_per_s": med("trivial_on", "steady_trials_per_s"),
        "ours_tracking_all_figures_steady_trials_per_s": med("trivial_all", "steady_trials_per_s"),
        "ours_tracking_off_trials_per_s": med("trivial_off_rate"),
        "ours_tracking_off_steady_trials_per_s": med("trivial_off", "steady_trials_per_s"),
        "raw_tune_trials_per_s": med("raw_tune_rate"),
        "raw_tune_steady_trials_per_s": med("raw_tune", "steady_trials_per_s"),
        "ray_init_s": med("trivial_on", "ray_init_s"),
        "workers_ready_s": med("trivial_on", "workers_ready_s"),
        "driver_warm_up_s": med("trivial_on", "driver_warm_up_s"),
        "trivial_mlflow_s_per_trial": med("trivial_mlflow_s_per_trial"),
        "digits_epochs": sizes(ctx)["digits_epochs"],
        "digits_trial_time_s_tracking_off": med("digits_off", "trial_time_mean_s"),
        "digits_trial_time_s_tracking_on": med("digits_on", "trial_time_mean_s"),
        "digits_search_s_tracking_on": med("digits_on", "search_s"),
        "digits_search_s_tracking_off": med("digits_off", "search_s"),
        "digits_mlflow_cpu_s_per_trial": med("digits_on", "tracking_cpu_s_per_trial"),
        "digits_mlflow_cpu_pct_of_trial": med("digits_on", "tracking_cpu_pct_of_trial"),
        "digits_mlflow_busy_s_per_trial": med("digits_on", "tracking_s_per_trial"),
        "digits_mlflow_busy_pct_of_trial": med("digits_on", "tracking_pct_of_trial"),
        "digits_mlflow_all_figures_cpu_pct_of_trial": med(
            "digits_all", "tracking_cpu_pct_of_trial"
        ),
        "digits_mlflow_all_figures_busy_pct_of_trial": med("digits_all", "tracking_pct_of_trial"),
        "trivial_mlflow_cpu_s_per_trial": med("trivial_on", "tracking_cpu_s_per_trial"),
        "trivial_mlflow_busy_s_per_trial": med("trivial_on", "tracking_s_per_trial"),
        "digits_mlflow_s_per_trial": med("digits_mlflow_s_per_trial"),
        "digits_mlflow_pct_of_trial": med("digits_mlflow_pct"),
        "trivial_mlflow_all_figures_s_per_trial": med("trivial_mlflow_all_s_per_trial"),
        "digits_mlflow_all_figures_s_per_trial": med("digits_mlflow_all_s_per_trial"),
        "digits_mlflow_all_figures_pct_of_trial": med("digits_mlflow_all_pct"),
    }
    return {
        "title": "B3 overhead: trials per second once Ray is up, and MLflow's cost per trial",
        "figures": figures,
        "reps": rows,
        "goals": [
            goal(
                "B3 trivial trials/s, tracking on (steady)",
                figures["ours_tracking_on_steady_trials_per_s"],
                ">=",
                5.0,
                "/s",
            ),
            goal(
                "B3 MLflow logging (writer CPU), % of trial time (digits)",
                figures["digits_mlflow_cpu_pct_of_trial"],
                "<",
                5.0,
                "%",
            ),
            goal(
                "B3 trivial trials/s, tracking on, trial_figures all (steady)",
                figures["ours_tracking_all_figures_steady_trials_per_s"],
                ">=",
                5.0,
                "/s",
            ),
        ],
        "notes": [
            "Trivial trial: iris, 2 folds, 1 epoch, hidden [8], a grid over the learning rate.",
            "Rates: *_trials_per_s over the whole search once Ray is up, its prestarted "
            "workers idle and the driver's MLflow imported (driver_warm_up_s, with tracking on "
            "and off alike; raw_tune: once ray.init returns; its workers start with the search); "
            "*_steady_* between the first and the last trial completion.",
            "MLflow logging per trial (the goal: *_mlflow_cpu_*): trials do not call MLflow; the "
            "driver's writer thread logs every trial's child run (run, params, metric batches, "
            "tables, figures for trials that are the best so far, end) from the trials' "
            "reports. Its CPU seconds in all / trials, as a share of a trial's mean time "
            "(Tune's time_total_s): the CPU it takes from the trials on a machine they keep "
            "busy. *_busy_*: its wall time instead, which also holds its waits for the "
            "store's disk (SQLite commits), the GIL and a core. *_all_figures_*: "
            "tracking.trial_figures all (PNGs for every trial).",
            "Whole-search MLflow cost (*_mlflow_s_per_trial, *_mlflow_pct_of_trial) = (wall on − "
            "wall off) × concurrent trials / trials, in core-seconds, against a trial's time "
            "without tracking: it also holds one-time costs (the parent run in the "
            "driver) and the writer's competition for the 2 cores, spread over only this "
            "search's trials; a difference of two noisy walls.",
        ],
    }


def profile(ctx: BenchContext) -> dict[str, Any]:
    """The trivial search with tracking on, and the digits trial, under cProfile."""
    from benchmarks.profiling import profile_search

    out = {}
    for label, make in (
        ("trivial", lambda uri: trivial_config(sizes(ctx)["trials"], True, uri)),
        ("digits", lambda uri: digits_config(sizes(ctx)["digits_epochs"], True, uri)),
    ):
        folder = ctx.scratch(f"b3-profile-{label}")
        out[label] = profile_search(make(ctx.tracking_uri(folder)).model_dump(), folder)
    return out


# --------------------------------------------------------------------------- child side
def trivial_config(trials: int, tracking: bool, tracking_uri: str | None, figures: str = "best"):
    lrs = [round(1e-3 * (1 + i / trials), 8) for i in range(trials)]
    return search_config(
        {
            "data.source": "builtin:iris",
            "data.modality": "auto",
            "split.folds": 2,
            "training.epochs": 1,
            "training.batch_size": 32,
            "model.hidden_sizes": [8],
            "search.space": {"training.optimizer.lr": {"grid": lrs}},
            "tracking.enabled": tracking,
            "tracking.tracking_uri": tracking_uri,
            "tracking.trial_figures": figures,
        }
    )


def raw_tune(trials: int, folder: Path) -> dict[str, Any]:
    """Ray Tune alone: a function trainable that reports once, actors reused."""
    import ray
    from ray import tune

    from benchmarks.common import completion_clock, steady_rate

    started = time.perf_counter()
    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    ray_init_s = time.perf_counter() - started

    def trainable(config: dict[str, Any]) -> None:
        tune.report({"score": config["i"]})

    clock = completion_clock()
    started = time.perf_counter()
    grid = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"i": tune.grid_search(list(range(trials)))},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(
            storage_path=str(folder), name="raw", verbose=0, callbacks=[clock]
        ),
    ).fit()
    search_s = time.perf_counter() - started
    return {
        "ray_init_s": ray_init_s,
        "search_s": search_s,
        "n_trials": len(grid),
        "steady_trials_per_s": steady_rate(clock.times),
    }


def child(payload: dict[str, Any]) -> dict[str, Any]:
    kind, folder = payload["kind"], Path(payload["folder"])
    if kind == "raw_tune":
        return raw_tune(int(payload["trials"]), folder / "ray_results")
    if kind == "trivial":
        config = trivial_config(
            int(payload["trials"]),
            payload["tracking"],
            payload["tracking_uri"],
            payload.get("figures", "best"),
        )
    elif kind == "digits":
        config = digits_config(
            int(payload["digits_epochs"]), payload["tracking"], payload["tracking_uri"]
        )
        config = apply_overrides(config, {"tracking.trial_figures": payload.get("figures", "best")})
    else:
        raise ValueError(f"unknown child kind {kind!r}")
    return timed_search(config, folder / "ray_results", f"b3-{kind}")


if __name__ == "__main__":
    child_main(child)
