"""Where the search adjusts Ray Tune's internals, each with Tune's own path as the fallback.

- :func:`reuse_prestarted_workers`: Tune's trial actors run in Ray's prestarted, preloaded idle
  workers instead of new processes (:func:`prepare_worker_env` before ``ray.init``).
- :func:`count_callbacks_by_name`: Tune's callback telemetry names callbacks without importing
  Ray's MLflow integration (which imported MLflow inside ``Tuner.fit``, before any trial).
- :func:`kill_unready_actors_at_end`: at the end of ``Tuner.fit``, Tune's actors that were
  dropped before they ever started are killed instead of waited for (up to 5 s).
"""

from __future__ import annotations

import collections
import contextlib
import os
from typing import Any

from orchestrator.warmup import join_background_imports

# Tune's DEFAULT_ENV_VARS (ray.tune.execution.class_cache), which every trial actor gets. Reading
# them there imports ray.tune and ray.train (~1.4 s) on the main thread before ray.init could
# start; a test checks they match, and reuse_prestarted_workers compares against Tune's own
# values at actor creation, so a Ray that changed them only loses the worker reuse.
TUNE_DEFAULT_ENV = {"PL_DISABLE_FORK": "1"}
# The callbacks that Tune's usage telemetry counts by name (ray.air._internal.usage), besides its
# default loggers. It imports their modules to name them, and Ray's MLflow integration imports
# MLflow: ~2 s on the main thread inside Tuner.fit, before any trial was submitted.
INTEGRATION_CALLBACKS = (
    "WandbLoggerCallback",
    "MLflowLoggerCallback",
    "CometLoggerCallback",
    "AimLoggerCallback",
)

# the environment that the workers of the Ray ensure_ray started inherit, and that Ray's node id
_worker_env: dict[str, str] | None = None
_worker_env_node: str | None = None
_original_actor_class = None


def _tune_actor_env() -> dict[str, str]:
    """The environment variables Ray Tune gives its trial actors (``_ActorClassCache.get``)."""
    from ray.tune.execution import class_cache

    env = dict(class_cache.DEFAULT_ENV_VARS)
    env.update({k: os.environ[k] for k in class_cache.ENV_VARS_TO_PROPAGATE if k in os.environ})
    return env


def prepare_worker_env() -> None:
    """Set Tune's actor variables in this process before ``ray.init``, so Ray's processes (and
    so every worker) inherit them, and remember the environment the workers will have.

    Only Tune's defaults need setting: the variables it propagates are taken from this
    process's environment, which the workers inherit whole."""
    global _worker_env
    os.environ.update(TUNE_DEFAULT_ENV)
    _worker_env = dict(os.environ)


def reuse_prestarted_workers() -> None:
    """Let Tune's trial actors run in Ray's prestarted (and preloaded) idle workers.

    Tune creates its actor class with ``runtime_env={"env_vars": ...}`` (Lightning's
    ``PL_DISABLE_FORK`` and a few propagated variables). A runtime environment other than the
    job's makes Ray start a new worker process for each actor and leave the prestarted idle
    ones unused, so every trial worker would import torch, ray.tune and scikit-learn (~4 s of
    CPU each) only after Tune asks for it. When the workers of our local Ray already inherit
    exactly those variables, the actor class is created without a runtime environment: the
    actor then lands in an idle worker whose imports ran while the driver was busy. If the
    variables Tune wants differ from what the workers inherited (one set after ``ray.init``),
    Tune's own class is used, with its runtime environment. Checked by
    ``tests/test_raystart.py`` (trial process ids against the idle workers' ids).
    """
    global _original_actor_class, _worker_env_node
    # ray.tune's modules are imported here on this thread: never beside a background import of
    # the same modules (two threads importing one module graph can get a partially initialised
    # module: an ImportError seen when ray.init returned quickly)
    join_background_imports()
    import ray
    from ray.tune.execution import class_cache

    _worker_env_node = ray.get_runtime_context().get_node_id()
    if _original_actor_class is not None:
        return
    _original_actor_class = class_cache._ActorClassCache.get

    def get(cache, trainable_cls):
        env = _worker_env
        ours = env is not None and ray.get_runtime_context().get_node_id() == _worker_env_node
        if not ours or any(env.get(k) != v for k, v in _tune_actor_env().items()):
            return _original_actor_class(cache, trainable_cls)

        key = ("automl-no-runtime-env", trainable_cls)
        if key not in cache._cache:
            cache._cache[key] = ray.remote(trainable_cls)
        return cache._cache[key]

    class_cache._ActorClassCache.get = get


def count_callbacks_by_name() -> None:
    """Make Tune's callback telemetry (``tag_callbacks``, at the start of every ``Tuner.fit``)
    count the callbacks as it does, by class name, without importing Ray's MLflow, W&B, Comet
    and Aim integrations to learn their names (:data:`INTEGRATION_CALLBACKS`).

    Without this, the search's own callbacks make Tune import MLflow on the main thread before
    it submits the first trial, which the search defers until its trials run
    (``tracking.parentstart``). A Ray without that function is left as it is.
    """
    try:
        from ray.air._internal import usage
    except Exception:
        return
    if not callable(getattr(usage, "_count_callbacks", None)):
        return
    if getattr(usage._count_callbacks, "by_name", False):
        return

    def count(callbacks: list[Any] | None) -> dict[str, int]:
        from ray.tune import Callback
        from ray.tune.logger import LoggerCallback
        from ray.tune.utils.callback import DEFAULT_CALLBACK_CLASSES

        names = set(INTEGRATION_CALLBACKS) | {c.__name__ for c in DEFAULT_CALLBACK_CLASSES}
        counts: dict[str, int] = collections.defaultdict(int)
        for callback in callbacks or []:
            if not isinstance(callback, Callback):
                continue
            name = type(callback).__name__
            if name in names:
                counts[name] += 1
            elif isinstance(callback, LoggerCallback):
                counts["CustomLoggerCallback"] += 1
            else:
                counts["CustomCallback"] += 1
        return counts

    count.by_name = True  # type: ignore[attr-defined]
    count.original = usage._count_callbacks  # type: ignore[attr-defined]
    usage._count_callbacks = count


def kill_unready_actors_at_end() -> None:
    """At the end of ``Tuner.fit``, kill the trial actors Tune dropped before they were ready,
    instead of waiting up to 5 s for them to start only to stop.

    With ``reuse_actors``, Tune asks for an actor for each trial it stages; when a running
    trial ends first, the staged trial takes that actor and Tune drops the one it asked for,
    stopping it gracefully: its worker still starts (importing torch and ray.tune, ~3 s of CPU),
    builds the actor, then stops. With trials shorter than a worker's start (a 1-epoch search,
    B3's trivial trials) the last dropped actor is still starting when the search ends, and
    Tune's ``_cleanup_trials`` waits up to 5 s for it (measured: 3.15 s of a 1-epoch B1 search,
    between the last trial and ``Tuner.fit`` returning). No trial ever ran on such an actor, so
    there is nothing to stop gracefully. A Ray whose controller lacks these attributes is left
    as it is.
    """
    try:
        from ray.tune.execution.tune_controller import TuneController
    except Exception:
        return
    original = getattr(TuneController, "_cleanup_trials", None)
    if original is None or getattr(original, "kills_unready", False):
        return

    def _cleanup_trials(controller) -> None:
        with contextlib.suppress(Exception):  # Tune's internals: any surprise keeps Tune's path
            manager, ready = controller._actor_manager, controller._started_actors
            for tracked in list(controller._stopping_actors):
                # dropped (stopping), Actor.remote() called, never reported ready
                if tracked not in ready and manager.is_actor_started(tracked):
                    manager.remove_actor(tracked, kill=True)
        original(controller)

    _cleanup_trials.kills_unready = True  # type: ignore[attr-defined]
    _cleanup_trials.original = original  # type: ignore[attr-defined]
    TuneController._cleanup_trials = _cleanup_trials
