"""GPU path of the search: trials share one GPU with ``--gpus-per-trial 0.5``.

Run on a machine with a CUDA GPU (under 5 minutes)::

    python -m benchmarks.gpu_search [--trials 8] [--gpus-per-trial 0.5]

Prints trials per minute and the device memory used (peak of ``nvidia-smi`` samples, and the
peak that torch allocated in the refit on the driver).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import threading
import time


def sample_gpu_memory(stop: threading.Event, peaks: list[int]) -> None:
    """Peak ``memory.used`` (MiB) over all GPUs, sampled every 0.2 s."""
    while not stop.is_set():
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout
            peaks.append(sum(int(v) for v in out.split()))
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        stop.wait(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--gpus-per-trial", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()

    import ray
    import torch

    from orchestrator.config import Config, apply_overrides
    from orchestrator.search import run_search

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this script exercises the GPU path")
    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    config = apply_overrides(
        Config(),
        {
            "data.source": "builtin:digits",
            "model.family": "cnn",
            "split.folds": 3,
            "training.epochs": args.epochs,
            "training.device": "cuda",
            "search.algorithm": "random",
            "search.num_samples": args.trials,
            "search.gpus_per_trial": args.gpus_per_trial,
            "search.cpus_per_trial": 1,
            "search.space": {
                "training.optimizer.lr": {"loguniform": [5e-4, 5e-3]},
                "model.dropout": {"uniform": [0.0, 0.3]},
            },
            "tracking.enabled": False,
        },
    )
    stop, peaks = threading.Event(), []
    sampler = threading.Thread(target=sample_gpu_memory, args=(stop, peaks), daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory() as storage:
        started = time.perf_counter()
        result = run_search(config, name="gpu", storage=storage)
        wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    done = [t for t in result.trials if t.status != "ERROR"]
    print(f"device: {torch.cuda.get_device_name(0)}")
    print(
        f"trials: {len(result.trials)} ({len(done)} finished), gpus per trial {args.gpus_per_trial}"
    )
    print(f"wall: {wall:.1f} s, trials per minute: {60 * len(result.trials) / wall:.1f}")
    print(f"device memory used (nvidia-smi peak): {max(peaks, default=0)} MiB")
    print(
        f"best cv accuracy: {result.best.cv['accuracy']['mean']:.4f}, "
        f"test accuracy: {result.refit.test_metrics['accuracy']:.4f}"
    )
    for t in result.trials:
        if t.error:
            print(f"trial {t.trial_id} failed: {t.error}")


if __name__ == "__main__":
    main()
