"""How the driver starts Ray (the wrapper's own logic; Ray itself is faked here) and warms up."""

from __future__ import annotations

import sys

import pytest
import ray

from orchestrator import raystart


@pytest.fixture
def fake_init(monkeypatch):
    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("AUTOML_PRELOAD_WORKERS", raising=False)
    return calls


def test_local_start_has_no_prestarted_workers(fake_init):
    raystart.ensure_ray(num_cpus=2)
    (kwargs,) = fake_init
    assert kwargs["_system_config"] == raystart.NO_PRESTART
    assert kwargs["num_cpus"] == 2 and kwargs["address"] is None
    assert kwargs["include_dashboard"] is False


def test_preloading_workers_keeps_them_prestarted(fake_init, monkeypatch):
    monkeypatch.setenv("AUTOML_PRELOAD_WORKERS", "1")
    raystart.ensure_ray()
    config = fake_init[0]["_system_config"]
    assert config == {"preload_python_modules": list(raystart.PRELOAD_MODULES)}


def test_joining_a_cluster_keeps_its_settings(fake_init):
    raystart.ensure_ray(address="ray://somewhere:10001")
    (kwargs,) = fake_init
    assert kwargs["address"] == "ray://somewhere:10001" and "_system_config" not in kwargs


def test_background_warm_up_opens_the_tracking_store(tmp_path):
    """The thread imports the modules and leaves MLflow's store for the URI built and cached,
    so the search's own client does not build it again."""
    from mlflow import MlflowClient
    from mlflow.tracking._tracking_service.registry import TrackingStoreRegistry

    cache = TrackingStoreRegistry._get_store_with_resolved_uri
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    stores = cache.cache_info().currsize
    raystart.import_in_background(("json",), tracking_uri=uri).join(timeout=120)
    assert cache.cache_info().currsize == stores + 1  # this URI's store, built by the thread
    assert "json" in sys.modules
    assert (tmp_path / "mlflow.db").exists()  # created and migrated by the warm-up
    MlflowClient(uri).search_experiments()
    assert cache.cache_info().currsize == stores + 1  # the client reused it
