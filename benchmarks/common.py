"""Helpers shared by the benchmarks: child processes, configs, the bare PyTorch loop, memory.

Every contender runs in a fresh child process (``python -m benchmarks.bN --child in.json out.json``)
so that no contender inherits a warm Ray worker pool, imported modules or page cache from another.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORES = os.cpu_count() or 1

# B1's grid: lr 1e-3/3e-3 × hidden 64/128 × 1/2 hidden layers
B1_SPACE: dict[str, Any] = {
    "training.optimizer.lr": {"grid": [1.0e-3, 3.0e-3]},
    "model.hidden_sizes": {"grid": [[64], [128], [64, 64], [128, 128]]},
}


@dataclass
class BenchContext:
    """What every benchmark's ``run`` receives from ``benchmarks.run``."""

    quick: bool
    reps: int | None
    workdir: Path
    profile: bool
    log: Callable[[str], None] = print
    stores: dict[str, Path] = field(default_factory=dict)

    def repetitions(self, default: int) -> int:
        return 1 if self.quick and self.reps is None else (self.reps or default)

    def scratch(self, label: str) -> Path:
        """A fresh, empty folder for one contender's files (Ray results, MLflow store)."""
        return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=self.workdir))

    def tracking_uri(self, folder: Path) -> str:
        """A SQLite MLflow store in ``folder``, copied from one migrated once (not timed).

        A fresh store spends about 2.5 s on migrations, a one-off cost for a user, so every
        contender starts from an existing, empty store.
        """
        template = self.stores.get("mlflow")
        if template is None:
            template = self.workdir / "template-mlflow.db"
            run_child("common", {"kind": "make_store", "path": str(template)}, self.workdir)
            self.stores["mlflow"] = template
        target = folder / "mlflow.db"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"


# --------------------------------------------------------------------------- statistics, goals
def median(values: Sequence[float | None]) -> float | None:
    clean = [float(v) for v in values if v is not None]
    return statistics.median(clean) if clean else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def goal(label: str, value: float | None, op: str, target: float, unit: str = "") -> dict:
    """One goal as a row: ``value op target`` with op one of <=, <, >=, >."""
    checks = {
        "<=": lambda a, b: a <= b,
        "<": lambda a, b: a < b,
        ">=": lambda a, b: a >= b,
        ">": lambda a, b: a > b,
    }
    passed = None if value is None else bool(checks[op](value, target))
    return {
        "label": label,
        "value": value,
        "op": op,
        "target": target,
        "unit": unit,
        "passed": passed,
    }


def alternate(rep: int, contenders: Sequence[str]) -> list[str]:
    """The contenders in the order of repetition ``rep`` (rotated each time)."""
    k = rep % len(contenders)
    return list(contenders[k:]) + list(contenders[:k])


# --------------------------------------------------------------------------- child processes
def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


def child_command(module: str, payload_path: Path, out_path: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        f"benchmarks.{module}",
        "--child",
        str(payload_path),
        str(out_path),
    ]


def run_command(
    cmd: list[str],
    cwd: Path,
    label: str,
    memory: bool = False,
    timeout: float = 3600,
    cpu: bool = False,
) -> dict[str, Any]:
    """Run ``cmd``; returns its wall time (and, if asked, the peak memory or the CPU time of its
    process tree)."""
    log_path = cwd / f"{label}.log"
    samplers: dict[str, Any] = {}
    with open(log_path, "w") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
        if memory:
            samplers["memory"] = MemorySampler(proc.pid)
        if cpu:
            samplers["cpu"] = CpuSampler(proc.pid)
        for sampler in samplers.values():
            sampler.start()
        try:
            rc = proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
            wall = time.perf_counter() - started
            for sampler in samplers.values():
                sampler.stop()
    if rc != 0:
        tail = log_path.read_text()[-3000:]
        raise RuntimeError(f"{label} failed (exit {rc}); last output:\n{tail}")
    out: dict[str, Any] = {"process_wall_s": wall}
    for key, sampler in samplers.items():
        out[key] = sampler.summary(wall) if key == "cpu" else sampler.summary()
    return out


def run_child(
    module: str, payload: dict[str, Any], cwd: Path, memory: bool = False, cpu: bool = False
) -> dict[str, Any]:
    """Run ``child(payload)`` of ``benchmarks.<module>`` in a fresh process; returns its dict."""
    cwd.mkdir(parents=True, exist_ok=True)
    label = f"{module}-{payload.get('kind', 'child')}-{time.strftime('%H%M%S')}"
    payload_path, out_path = cwd / f"{label}.in.json", cwd / f"{label}.out.json"
    payload_path.write_text(json.dumps(payload))
    outer = run_command(
        child_command(module, payload_path, out_path), cwd, label, memory=memory, cpu=cpu
    )
    return {**json.loads(out_path.read_text()), **outer}


FAST_EXIT = "fast_exit"  # a child's result key: leave without the interpreter's (and Ray's) exit


def child_main(child: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Entry point of ``python -m benchmarks.<module> --child IN OUT``.

    A result holding ``FAST_EXIT: True`` ends the process with ``os._exit`` once written, as
    ``automl``'s command line does after its work (Ray's shutdown at exit takes seconds).
    """
    if len(sys.argv) != 4 or sys.argv[1] != "--child":
        raise SystemExit(f"usage: python -m {sys.argv[0]} --child PAYLOAD.json OUT.json")
    payload = json.loads(Path(sys.argv[2]).read_text())
    result = child(payload)
    fast = bool(result.pop(FAST_EXIT, False))
    Path(sys.argv[3]).write_text(json.dumps(result, default=float))
    if fast:
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(0)


def _common_child(payload: dict[str, Any]) -> dict[str, Any]:
    if payload["kind"] == "make_store":
        from mlflow import MlflowClient

        MlflowClient(f"sqlite:///{payload['path']}").search_experiments()
        return {}
    raise ValueError(f"unknown child kind {payload['kind']!r}")


# --------------------------------------------------------------------------- our search
def search_config(overrides: dict[str, Any]):
    """Our ``Config`` for a benchmark: a plain FNN (no dropout, batch norm, early stopping)."""
    from orchestrator.config import Config, apply_overrides

    base = {
        "data.modality": "table",
        "data.scaling": "minmax",
        "model.family": "fnn",
        "model.activation": "relu",
        "model.dropout": 0.0,
        "model.batch_norm": False,
        "model.linear_skip": False,  # the same plain MLP as the peers it is compared with
        "split.test_size": 0.15,
        "training.optimizer.name": "adam",
        "training.batch_size": 64,
        "training.early_stopping.enabled": False,
        "training.grad_clip": None,  # skorch and the bare loop do not clip
        "search.algorithm": "grid",
    }
    return apply_overrides(Config(), {**base, **overrides})


def digits_config(epochs: int, tracking: bool, tracking_uri: str | None = None):
    """B1's search: the 8-point grid on digits read as a table, 5 folds."""
    return search_config(
        {
            "data.source": "builtin:digits",
            "split.folds": 5,
            "training.epochs": epochs,
            "search.space": B1_SPACE,
            "tracking.enabled": tracking,
            "tracking.tracking_uri": tracking_uri,
        }
    )


def completion_clock():
    """A Ray Tune callback that notes when each trial completes (driver side)."""
    from ray.tune import Callback

    class CompletionClock(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self.times.append(time.perf_counter())

    return CompletionClock()


def steady_rate(times: list[float]) -> float | None:
    """Trials per second between the first and the last completion (start-up excluded)."""
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0])


def _cmdline(proc: Any) -> list[str]:
    try:
        return proc.cmdline()
    except Exception:  # the process ended meanwhile
        return []


def _cpu_seconds(proc: Any) -> float:
    try:
        times = proc.cpu_times()
        return times.user + times.system
    except Exception:
        return float("inf")


# what the search driver imports besides Ray: the search, its MLflow runs, the refit's model logging
DRIVER_MODULES = (
    "orchestrator.search",
    "orchestrator.tracking.runs",
    "orchestrator.tracking.trialrun",
    "orchestrator.tracking.registry",
    "mlflow.pyfunc",
)


def timed_search(config, storage: Path, name: str) -> dict[str, Any]:
    """Start Ray (timed on its own), import the driver's modules (timed on its own), then run
    the search without refit (timed: trial workers start inside it, as in ``automl search``)."""
    import importlib

    from orchestrator.ray_adapter import ensure_ray
    from orchestrator.search import run_search

    started = time.perf_counter()
    ensure_ray()
    ray_init_s = time.perf_counter() - started
    workers_ready_s = 0.0  # no worker is started ahead of the search
    started = time.perf_counter()
    for module in DRIVER_MODULES:
        importlib.import_module(module)
    driver_warm_up_s = time.perf_counter() - started
    clock = completion_clock()
    started = time.perf_counter()
    result = run_search(config, name=name, storage=str(storage), refit=False, callbacks=[clock])
    search_s = time.perf_counter() - started
    trial_s = [t.metrics["time_total_s"] for t in result.trials if "time_total_s" in t.metrics]
    # MLflow work per trial: the driver's writer thread logs every trial's run (its CPU time and
    # its busy wall time, in all / trials), against a trial's own time
    n = len(result.trials)
    tracking_s = result.tracking_s / n if n and result.tracking_s else None
    tracking_cpu_s = result.tracking_cpu_s / n if n and result.tracking_s else None
    trial_mean = statistics.fmean(trial_s) if trial_s else None

    def pct(seconds: float | None) -> float | None:
        return 100 * seconds / trial_mean if seconds is not None and trial_mean else None

    best = result.best.cv.get("accuracy", {}).get("mean") if result.best else None
    return {
        "ray_init_s": ray_init_s,
        "workers_ready_s": workers_ready_s,
        "driver_warm_up_s": driver_warm_up_s,
        "search_s": search_s,
        # what a first search started straight after ray.init waits for in all
        "search_s_from_ray_init": search_s + workers_ready_s + driver_warm_up_s,
        "n_trials": len(result.trials),
        "errors": [t.error for t in result.trials if t.error],
        "trial_time_mean_s": trial_mean,
        "tracking_s_per_trial": tracking_s,
        "tracking_pct_of_trial": pct(tracking_s),
        "tracking_cpu_s_per_trial": tracking_cpu_s,
        "tracking_cpu_pct_of_trial": pct(tracking_cpu_s),
        "steady_trials_per_s": steady_rate(clock.times),
        "best_cv_accuracy": best,
    }


def prepared_arrays(config) -> tuple[Any, Any, list, int]:
    """The rows and folds our pipeline uses for ``config``: X float32, y class indices."""
    import numpy as np

    from data import make_folds
    from orchestrator.pipeline import prepare_run

    run = prepare_run(config)
    ds = run.prepared.dataset
    X = np.asarray(ds.X, dtype=np.float32)
    classes, y = np.unique(np.asarray(ds.y), return_inverse=True)
    splits = make_folds(ds.y, run.prepared.task, config.split, config.seed, groups=ds.groups)
    return X, y.astype(np.int64), splits, len(classes)


# --------------------------------------------------------------------------- the bare loop
def mlp(n_in: int, hidden_sizes: Sequence[int], n_out: int):
    """The plain ReLU FNN all contenders train (Linear → ReLU per hidden size → Linear)."""
    from torch import nn

    layers: list[Any] = []
    for width in hidden_sizes:
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def bare_fold_fits(
    X,
    y,
    splits,
    points: list[dict[str, Any]],
    n_classes: int,
    epochs: int,
    batch_size: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Every point × fold trained one after another on one thread, batches by tensor slicing.

    Each fold is min-max scaled on its training part; validation accuracy is measured after
    every epoch, as the search reports it. Returns the total seconds and CV accuracies.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    started = time.perf_counter()
    cv = []
    for p, point in enumerate(points):
        accs = []
        for k, (tr, va) in enumerate(splits):
            lo, hi = X[tr].min(axis=0), X[tr].max(axis=0)
            span = np.where(hi > lo, hi - lo, 1.0)
            xtr = torch.from_numpy((X[tr] - lo) / span)
            xva = torch.from_numpy((X[va] - lo) / span)
            ytr, yva = torch.from_numpy(y[tr]), torch.from_numpy(y[va])
            torch.manual_seed(seed + 1000 * p + k)
            model = mlp(X.shape[1], point["hidden_sizes"], n_classes)
            opt = torch.optim.Adam(model.parameters(), lr=point["lr"])
            gen = torch.Generator().manual_seed(seed + k)
            n = len(ytr)
            for _ in range(epochs):
                model.train()
                order = torch.randperm(n, generator=gen)
                for i in range(0, n, batch_size):
                    idx = order[i : i + batch_size]
                    opt.zero_grad(set_to_none=True)
                    F.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
                    opt.step()
                model.eval()
                with torch.no_grad():
                    acc = (model(xva).argmax(1) == yva).float().mean().item()
            accs.append(acc)
        cv.append(float(np.mean(accs)))
    return {
        "seconds": time.perf_counter() - started,
        "fits": len(points) * len(splits),
        "cv_accuracy": cv,
        "best_cv_accuracy": max(cv),
    }


def grid_points(space: dict[str, Any]) -> list[dict[str, Any]]:
    """The grid as bare-loop points ``{"lr", "hidden_sizes"}``."""
    import itertools

    lrs = space["training.optimizer.lr"]["grid"]
    sizes = space["model.hidden_sizes"]["grid"]
    return [{"lr": lr, "hidden_sizes": h} for lr, h in itertools.product(lrs, sizes)]


# --------------------------------------------------------------------------- memory
def _role(proc: Any) -> str:
    """A Ray process's kind from its title: trial worker, idle worker, or its own name (raylet,
    gcs_server, ray::DashboardAgent, …). Ray titles a worker ``ray::IDLE`` until it runs an actor
    or task, then ``ray::<actor class>``."""
    name = proc.name()
    if name == "ray::IDLE":
        return "idle worker"
    if name.startswith("ray::") and not name.endswith("Agent"):
        return "trial worker"
    return name


class _TreeSampler:
    """Reads a process and all its descendants (Ray's raylet, GCS and workers) every
    ``interval`` in a thread until stopped; subclasses say what a reading keeps (``_sample``)."""

    def __init__(self, pid: int, interval: float) -> None:
        self.pid, self.interval = pid, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def role(self, proc: Any) -> str:
        return "driver" if proc.pid == self.pid else _role(proc)

    def _loop(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            self._sample(procs)
            self._stop.wait(self.interval)

    def _sample(self, procs: list[Any]) -> None:
        raise NotImplementedError


class MemorySampler(_TreeSampler):
    """Peak memory of a process and all its descendants.

    Sums proportional set size (PSS: a shared page counts 1/n in each of its n processes, so
    the object store's shared pages are not counted once per worker), falling back to USS, and
    also records the plain RSS sum for reference.
    """

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(pid, interval)
        self.peak_pss = self.peak_rss = 0
        self.peak_procs = 0
        self.peak_roles: dict[str, int] = {}
        self.samples = 0

    def _sample(self, procs: list[Any]) -> None:
        import psutil

        pss = rss = 0
        roles: dict[str, int] = {}
        for proc in procs:
            try:
                info = proc.memory_full_info()
                role = self.role(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            pss += getattr(info, "pss", info.uss)
            rss += info.rss
            roles[role] = roles.get(role, 0) + getattr(info, "pss", info.uss)
        if pss > self.peak_pss:
            self.peak_roles = roles
        self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
        self.peak_procs = max(self.peak_procs, len(procs))
        self.samples += 1

    def summary(self) -> dict[str, Any]:
        mib = 1024 * 1024
        return {
            "peak_pss_mib": self.peak_pss / mib,
            "peak_rss_sum_mib": self.peak_rss / mib,
            "peak_processes": self.peak_procs,
            # where the peak sits: PSS by kind of process at the sample with the largest sum
            "peak_pss_mib_by_process": {k: round(v / mib, 1) for k, v in self.peak_roles.items()},
            "samples": self.samples,
        }


def _busy_jiffies() -> tuple[int, int]:
    """The machine's CPU time in clock ticks from /proc/stat: (busy, steal)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq, steal


class CpuSampler(_TreeSampler):
    """CPU seconds (user + system) of a process and all its descendants, and of the machine.

    Each process's counters are read every ``interval`` and its last reading is kept, so a
    process misses at most its last ``interval`` before exiting (a lower bound). The machine's
    busy time over the same span (/proc/stat, all processes, this benchmark's parent too) is an
    upper bound on a dedicated machine; steal is the time the hypervisor gave to other guests.
    """

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(pid, interval)
        self.cpu: dict[int, tuple[str, float]] = {}
        self._start = self._end = (0, 0)

    def start(self) -> None:
        self._start = _busy_jiffies()
        super().start()

    def stop(self) -> None:
        self._end = _busy_jiffies()
        super().stop()

    def _sample(self, procs: list[Any]) -> None:
        import psutil

        for proc in procs:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    role = self.role(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            if role in ("idle worker", "trial worker"):
                role = "worker"  # one process is both over its life
            # (not children_user/_system: a process that reaped its children, as the driver
            # reaps Ray's daemons, would count them twice)
            self.cpu[proc.pid] = (role, times.user + times.system)

    def summary(self, wall: float) -> dict[str, Any]:
        tick = os.sysconf("SC_CLK_TCK")
        by_role: dict[str, float] = {}
        for role, seconds in self.cpu.values():
            by_role[role] = by_role.get(role, 0.0) + seconds
        tree = sum(by_role.values())
        busy = (self._end[0] - self._start[0]) / tick
        return {
            "tree_cpu_s": tree,
            "tree_cpu_s_by_process": {k: round(v, 2) for k, v in sorted(by_role.items())},
            "processes": len(self.cpu),
            "machine_busy_cpu_s": busy,
            "machine_steal_s": (self._end[1] - self._start[1]) / tick,
            # the share of the cores' time (wall × cores) the command's processes kept busy
            "tree_utilisation": tree / (wall * CORES) if wall else None,
        }


if __name__ == "__main__":
    child_main(_common_child)
