"""Shared fixtures: fixed seeds, tiny data, a scratch working directory."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(autouse=True)
def _seed() -> None:
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test inside an empty directory (local MLflow stores land there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def tiny_csv(tmp_path):
    """A small messy classification table: numbers as text, stray tokens, mixed-case categories."""
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 120
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    y = np.where(x1 + (color == "red") * 1.5 > 0.3, "yes", "no")
    frame = pd.DataFrame({"x1": x1.round(4).astype(str), "x2": x2, "color": color, "label": y})
    frame.loc[3, "x1"] = "?"
    frame.loc[5, "color"] = " RED"
    frame.loc[7, "x2"] = np.nan
    path = tmp_path / "tiny.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray with 2 CPUs for the whole test session, started as ``automl search`` starts
    it."""
    import ray

    from orchestrator.ray_adapter import ensure_ray

    ensure_ray(num_cpus=2)
    yield ray
    ray.shutdown()


def tiny_config(**overrides):
    """A fast config on iris: 2 folds, a few epochs."""
    from orchestrator.config import Config, apply_overrides

    base = {
        "data.source": "builtin:iris",
        "split.folds": 2,
        "training.epochs": 4,
        "training.batch_size": 32,
        "model.hidden_sizes": [16],
        "training.early_stopping.enabled": False,
        "tracking.enabled": False,
    }
    base.update(overrides)
    return apply_overrides(Config(), base)
