"""The tracking store: URI resolution, experiments, parameter/tag/metric helpers, git, datasets."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from orchestrator.tracking.keys import (  # noqa: F401  (re-exported: stores was their home)
    LOWER_IS_BETTER,
    TAG_ERROR,
    TAG_METRIC,
    TAG_MODE,
    TAG_ROLE,
    TAG_SEARCH,
    TAG_STATUS,
    TAG_TRIAL,
    default_mode,
    is_better,
    metric_base,
)
from orchestrator.tracking.schema import seed_sqlite_store
from orchestrator.tracking.sqlbatch import log_batch

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter value
MAX_TAG_LENGTH = 5000
METRICS_PER_BATCH = 1000
PARAMS_PER_BATCH = 100
TRUNCATED = "...[truncated]"
DEFAULT_EXPERIMENT = "automl"


# --------------------------------------------------------------------------- store location
def resolve_tracking_uri(uri: str | None = None) -> str:
    """Explicit URI, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``; absolute."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"
    if uri.startswith("sqlite:///"):
        path = uri.removeprefix("sqlite:///")
        return (
            uri
            if path.startswith("/") or path == ":memory:"
            else f"sqlite:///{Path(path).resolve()}"
        )
    if "://" not in uri and not uri.startswith(("databricks", "file:")):
        return Path(uri).resolve().as_uri()  # a bare directory: the file store
    return uri


def tracking_client(uri: str | None = None) -> MlflowClient:
    """An MlflowClient of the resolved URI, for code that writes to the store: a SQLite store
    that does not exist yet starts as a copy of MLflow's empty schema (``schema``)."""
    uri = resolve_tracking_uri(uri)
    seed_sqlite_store(uri)
    return MlflowClient(uri)


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """``<store dir>/mlartifacts/<experiment>`` for a local SQLite store, else None (server's)."""
    if not tracking_uri.startswith("sqlite:///") or tracking_uri.endswith(":memory:"):
        return None
    folder = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment).strip("_") or "default"
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    return (db.parent / "mlartifacts" / folder).as_uri()


@contextlib.contextmanager
def quiet_schema_hints() -> Iterator[None]:
    """Without MLflow's hint that integer columns cannot hold missing values, printed whenever it
    infers a schema from integer data (every digits search). Nothing to act on here: a model's
    signature widens integers to optional doubles (``serving._relaxed``), and a dataset record's
    schema only describes the training data."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Hint: Inferred schema contains integer column", category=UserWarning
        )
        yield


def local_artifact_dir(artifact_uri: str | None) -> Path | None:
    """The folder of a run's artifacts when the store keeps them on this machine (a ``file:``
    URI or a plain path, what MLflow's local artifact repository serves), else None. Read from
    the URI: building a repository to ask would start a thread pool per run."""
    if not artifact_uri or urllib.parse.urlparse(artifact_uri).scheme not in ("", "file"):
        return None
    from mlflow.utils.file_utils import local_file_uri_to_path

    return Path(local_file_uri_to_path(artifact_uri))


@contextlib.contextmanager
def artifact_folder(client: MlflowClient, run_id: str, artifact_uri: str | None) -> Iterator[Path]:
    """A folder whose files become the run's artifacts: its artifact directory itself where that
    is local (no temporary copy, no ``get_run`` to find it), else a temporary folder uploaded
    with ``log_artifacts`` when the block ends."""
    local = local_artifact_dir(artifact_uri)
    if local is not None:
        local.mkdir(parents=True, exist_ok=True)
        yield local
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)
        client.log_artifacts(run_id, tmp)


@contextlib.contextmanager
def use_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (model logging, registry) at ``uri`` for a while."""
    from mlflow.tracking._tracking_service import utils as service

    old_uri = getattr(service, "_tracking_uri", None)
    old_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(old_uri)
        if old_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_env


def get_or_create_experiment(client: MlflowClient, tracking_uri: str, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location(tracking_uri, name))
        except MlflowException:  # created concurrently by another process
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


# --------------------------------------------------------------------------- small helpers
def param_value(value: Any) -> str:
    """A parameter as text, cut to MLflow's limit (the full config is kept as config.json)."""
    text = json.dumps(value) if isinstance(value, (dict, list, tuple)) else str(value)
    if len(text) > MAX_PARAM_LENGTH:
        text = text[: MAX_PARAM_LENGTH - len(TRUNCATED)] + TRUNCATED
    return text


def one_line(text: str, limit: int = MAX_TAG_LENGTH) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - len(TRUNCATED)] + TRUNCATED


def param_items(params: dict[str, Any], skip=()) -> list[Param]:
    return [Param(str(k), param_value(v)) for k, v in params.items() if k not in skip]


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any], skip=()) -> None:
    items = param_items(params, skip)
    for i in range(0, len(items), PARAMS_PER_BATCH):
        log_batch(client, run_id, params=items[i : i + PARAMS_PER_BATCH])


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, Any], step: int = 0) -> None:
    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step) for k, v in metrics.items() if _is_number(v)]
    for i in range(0, len(items), METRICS_PER_BATCH):
        log_batch(client, run_id, metrics=items[i : i + METRICS_PER_BATCH])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def set_tags(client: MlflowClient, run_id: str, tags: dict[str, Any]) -> None:
    items = [RunTag(str(k), one_line(v)) for k, v in tags.items() if v is not None]
    for i in range(0, len(items), PARAMS_PER_BATCH):
        log_batch(client, run_id, tags=items[i : i + PARAMS_PER_BATCH])


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parents[2],
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def config_dict(config: Any) -> dict[str, Any]:
    return config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config)


def dataset_digest(X: Any, y: Any = None) -> str:
    """A short content hash of features and target (stable across processes)."""
    import hashlib

    h = hashlib.sha256()
    for part in (X, y):
        if part is None:
            continue
        if isinstance(part, pd.DataFrame):
            h.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
            h.update(",".join(map(str, part.columns)).encode())
        else:
            arr = np.asarray(part)
            if arr.dtype == object:
                h.update(
                    pd.util.hash_pandas_object(pd.Series(arr), index=False).to_numpy().tobytes()
                )
            else:
                h.update(np.ascontiguousarray(arr).tobytes())
            h.update(str(arr.shape).encode())
    return h.hexdigest()[:16]


def describe_dataset(run: Any, sample: int = 200) -> dict[str, Any]:
    """The ``dataset`` argument of :meth:`SearchTracker.start` for a ``PreparedRun``."""
    ds = run.prepared.dataset
    n = min(sample, ds.n_samples)
    if isinstance(ds.X, pd.DataFrame):
        data = ds.X.head(n).copy()
        data["target"] = np.asarray(ds.y)[:n]
        targets = "target"
    else:
        data = np.asarray(ds.X)[:n].reshape(n, -1)
        targets = None
    return {
        "name": Path(str(run.source).removeprefix("builtin:")).name or str(run.source),
        "source": str(run.source),
        "digest": dataset_digest(ds.X, ds.y),
        "data": data,
        "targets": targets,
        "context": "training",
        "n_samples": int(ds.n_samples),
    }


def _log_dataset(client: MlflowClient, run_id: str, dataset: dict[str, Any]) -> None:
    """``mlflow.log_input`` for an explicit run: a small sample with the full data's digest."""
    data = dataset.get("data")
    name, digest = str(dataset.get("name") or "dataset"), dataset.get("digest")
    source = str(dataset.get("source") or name)
    try:
        from mlflow.data.code_dataset_source import CodeDatasetSource

        src = CodeDatasetSource(tags={"source": source})
    except ImportError:  # pragma: no cover - older layouts
        src = None
    with quiet_schema_hints():  # the schema is inferred when the entity is made
        if isinstance(data, pd.DataFrame):
            ds = mlflow.data.from_pandas(
                data, source=src, targets=dataset.get("targets"), name=name, digest=digest
            )
        else:
            arr = np.zeros((0, 1), dtype=np.float32) if data is None else np.asarray(data)
            ds = mlflow.data.from_numpy(arr, source=src, name=name, digest=digest)
        entity = ds._to_mlflow_entity()
    context = str(dataset.get("context") or "training")
    client.log_inputs(run_id, [DatasetInput(entity, [InputTag(MLFLOW_DATASET_CONTEXT, context)])])
