"""The GPU check: what one GPU gives a search, in under 5 minutes (``benchmarks/gpu_check.sh``).

Prints, on the machine's first GPU:
- trials per minute with 1, 2 and 4 trials per GPU (``--gpus-per-trial`` 1, 0.5, 0.25), and how
  many trials Ray actually ran at once (from the trials' own start and end times);
- GPU memory per trial: the peak torch allocated in one trial's cross-validation, and the peak
  of ``nvidia-smi`` over each search divided by the trials it ran at once;
- the speed-up of fused folds (the k folds as one stacked model) over folds one by one;
- bf16 against fp32: time and test accuracy of the same training run.

``--device cpu --quick`` runs the same steps on the CPU against a Ray that declares one logical
GPU (Ray schedules by declared resources): the smoke test of the script and of fractional GPU
packing on a machine without one (tests/test_gpu_check.py). Its timings mean nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def sample_gpu_memory(stop: threading.Event, peaks: list[int]) -> None:
    """``memory.used`` (MiB) of the first GPU, sampled every 0.2 s."""
    query = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"]
    while not stop.is_set():
        try:
            out = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout
            peaks.append(int(out.split()[0]))
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            pass
        stop.wait(0.2)


def trial_clock() -> Any:
    """A Tune callback that records when each trial starts and ends, on the driver's clock."""
    from ray import tune

    class Clock(tune.Callback):
        def __init__(self) -> None:
            self.starts: dict[str, float] = {}
            self.ends: dict[str, float] = {}

        def on_trial_start(self, iteration, trials, trial, **info) -> None:
            self.starts[trial.trial_id] = time.monotonic()

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self.ends[trial.trial_id] = time.monotonic()

        on_trial_error = on_trial_complete

        def most_at_once(self) -> int:
            """The most trials that ran at the same time."""
            events = sorted(
                [(t, 1) for t in self.starts.values()] + [(t, -1) for t in self.ends.values()]
            )
            running = peak = 0
            for _, step in events:
                running += step
                peak = max(peak, running)
            return peak

    return Clock()


def base_overrides(args: argparse.Namespace) -> dict[str, Any]:
    if args.quick:
        return {"data.source": "builtin:iris", "model.hidden_sizes": [16], "split.folds": 3}
    return {"data.source": "builtin:digits", "model.family": "cnn", "split.folds": 3}


def search_rates(args: argparse.Namespace, device: str) -> list[dict[str, Any]]:
    from orchestrator.config import Config, apply_overrides
    from orchestrator.search import run_search

    rows = []
    for per_gpu in args.per_gpu:
        config = apply_overrides(
            Config(),
            {
                **base_overrides(args),
                "training.epochs": args.epochs,
                "training.device": device,
                "search.algorithm": "random",
                "search.num_samples": args.trials,
                "search.gpus_per_trial": 1.0 / per_gpu,
                "search.cpus_per_trial": args.cpus_per_trial,
                "search.space": {"training.optimizer.lr": {"loguniform": [5e-4, 5e-3]}},
                "tracking.enabled": False,
            },
        )
        stop, peaks = threading.Event(), []
        sampler = threading.Thread(target=sample_gpu_memory, args=(stop, peaks), daemon=True)
        sampler.start()
        with tempfile.TemporaryDirectory() as storage:
            started = time.perf_counter()
            clock = trial_clock()
            result = run_search(
                config, name=f"gpu{per_gpu}", storage=storage, refit=False, callbacks=[clock]
            )
            wall = time.perf_counter() - started
        stop.set()
        sampler.join()
        at_once = clock.most_at_once()
        rows.append(
            {
                "trials_per_gpu": per_gpu,
                "trials": len(result.trials),
                "errors": sum(t.status == "ERROR" for t in result.trials),
                "wall_s": round(wall, 1),
                "trials_per_min": round(60 * len(result.trials) / wall, 1),
                "most_at_once": at_once,
                "smi_peak_mib": max(peaks, default=None),
                "smi_mib_per_trial": round(max(peaks) / at_once) if peaks and at_once else None,
            }
        )
        print(
            f"{per_gpu} trial(s) per GPU: {rows[-1]['trials_per_min']} trials/min, "
            f"{at_once} at once, nvidia-smi peak {rows[-1]['smi_peak_mib']} MiB",
            flush=True,
        )
    return rows


def one_cv(args: argparse.Namespace, device: str, **overrides: Any) -> dict[str, Any]:
    """One trial's cross-validation in this process: wall time and torch's peak memory."""
    import torch

    from orchestrator.config import Config, apply_overrides
    from orchestrator.crossval import cross_validate
    from orchestrator.pipeline import prepare_run

    base = {**base_overrides(args), "training.epochs": args.epochs, "training.device": device}
    config = apply_overrides(Config(), {**base, "tracking.enabled": False, **overrides})
    run = prepare_run(config)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    cv = cross_validate(run.prepared, run.config)
    for _ in cv:
        pass
    if device == "cuda":
        torch.cuda.synchronize()
    return {
        "wall_s": time.perf_counter() - started,
        "fused": cv.fused is not None,
        "cv_accuracy": cv.result.summary()["accuracy"]["mean"],
        "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
    }


def fused_speedup(args: argparse.Namespace, device: str) -> dict[str, Any]:
    table = {"data.source": "builtin:digits", "model.family": "fnn", "model.hidden_sizes": [256]}
    fused = one_cv(args, device, **table, **{"training.fuse_folds": "on"})
    alone = one_cv(args, device, **table, **{"training.fuse_folds": "off"})
    speedup = alone["wall_s"] / fused["wall_s"]
    print(
        f"fused folds: {fused['wall_s']:.2f} s (stacked: {fused['fused']}), one by one: "
        f"{alone['wall_s']:.2f} s, speed-up {speedup:.2f}x",
        flush=True,
    )
    return {"fused_s": fused["wall_s"], "sequential_s": alone["wall_s"], "speedup": speedup}


def precision_compare(args: argparse.Namespace, device: str) -> dict[str, Any]:
    from orchestrator.config import Config, apply_overrides
    from orchestrator.pipeline import run_training

    out = {}
    for precision in ("fp32", "bf16"):
        config = apply_overrides(
            Config(),
            {
                **base_overrides(args),
                "training.epochs": args.epochs,
                "training.device": device,
                "training.precision": precision,
                "tracking.enabled": False,
            },
        )
        started = time.perf_counter()
        result = run_training(config)
        out[precision] = {
            "wall_s": time.perf_counter() - started,
            "test_accuracy": result.test_metrics["accuracy"],
        }
        print(
            f"{precision}: {out[precision]['wall_s']:.1f} s, test accuracy "
            f"{out[precision]['test_accuracy']:.4f}",
            flush=True,
        )
    out["bf16_speedup"] = out["fp32"]["wall_s"] / out["bf16"]["wall_s"]
    print(f"bf16 speed-up over fp32: {out['bf16_speedup']:.2f}x", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny data (the smoke test)")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument(
        "--per-gpu",
        type=lambda text: [int(v) for v in text.split(",")],
        default=[1, 2, 4],
        help="trials per GPU to try, comma-separated (default 1,2,4)",
    )
    parser.add_argument("--out", default="benchmarks/results/gpu_check.json")
    args = parser.parse_args(argv)

    import ray
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu for the smoke test")
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU (1 logical GPU)"
    print(f"device: {name}, torch {torch.__version__}", flush=True)
    # on the CPU, one declared GPU lets Ray pack fractional trials as it would on a real one
    ray.init(
        num_gpus=None if args.device == "cuda" else 1,
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=False,
    )
    doc: dict[str, Any] = {"device": name, "args": vars(args)}
    try:
        started = time.perf_counter()
        doc["search"] = search_rates(args, args.device)
        print(f"(searches took {time.perf_counter() - started:.0f} s)", flush=True)
        memory = one_cv(args, args.device)
        doc["trial_peak_mib"] = memory["peak_mib"]
        print(f"GPU memory per trial (torch peak): {memory['peak_mib']} MiB", flush=True)
        doc["fused"] = fused_speedup(args, args.device)
        doc["precision"] = precision_compare(args, args.device)
    finally:
        ray.shutdown()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {out}")
    return doc


if __name__ == "__main__":
    main()
