#!/usr/bin/env bash
# The GPU check (issue 23): trials per minute with 1, 2 and 4 trials per GPU, GPU memory per
# trial, fused against sequential folds, bf16 against fp32. Under 5 minutes on one GPU.
# Usage: benchmarks/gpu_check.sh [extra flags of python -m benchmarks.gpu_check]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "error: no nvidia-smi: this check needs a machine with a CUDA GPU" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
exec timeout 300 python -m benchmarks.gpu_check --cpus-per-trial 2 "$@"
