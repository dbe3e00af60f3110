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
import urllib.request
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from orchestrator.errors import TrackingError, did_you_mean
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
from orchestrator.tracking.resilient import disk_full_is_one_line

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a parameter value
MAX_TAG_LENGTH = 5000
# MLflow's documented limits on one log_batch request (REST API, "Log Batch"): 1,000 metrics,
# 100 parameters, 100 tags, 1,000 of them in all, and 1 MB of JSON
METRICS_PER_BATCH = 1000
PARAMS_PER_BATCH = 100
TAGS_PER_BATCH = 100
ENTITIES_PER_BATCH = 1000
BATCH_BYTES = 900_000  # a bound on a call's JSON (_json_size), under the 1 MB
TRUNCATED = "...[truncated]"
DEFAULT_EXPERIMENT = "automl"


# --------------------------------------------------------------------------- store location
# the schemes of MLflow's tracking stores (a database URI may name its driver: postgresql+psycopg2)
STORE_SCHEMES = (
    *("file", "sqlite", "postgresql", "mysql", "mssql", "http", "https"),
    *("databricks", "databricks-uc", "uc"),
)
STORE_FORMS = (
    "a folder, file:///PATH, sqlite:///PATH, postgresql://, mysql://, mssql://, http(s)://HOST "
    "or databricks"
)


def _check_scheme(uri: str) -> None:
    """TrackingError for a URI whose scheme no tracking store (nor an MLflow plugin) serves."""
    from importlib.metadata import entry_points

    scheme = urllib.parse.urlparse(uri).scheme.lower()
    if scheme.split("+", 1)[0] in STORE_SCHEMES:
        return
    if scheme in {e.name for e in entry_points(group="mlflow.tracking_store")}:
        return
    raise TrackingError(
        f"tracking URI {uri!r} has an unknown scheme '{scheme}'"
        f"{did_you_mean(scheme, STORE_SCHEMES)}; allowed: {STORE_FORMS} (set by --tracking-uri, "
        "tracking.tracking_uri or MLFLOW_TRACKING_URI)"
    )


def resolve_tracking_uri(uri: str | None = None) -> str:
    """Explicit URI, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``; absolute.
    A scheme no tracking store serves is a TrackingError."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"
    if "://" in uri:
        _check_scheme(uri)
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
    """An MlflowClient of the resolved URI (MLflow creates a SQLite store that does not exist)."""
    return MlflowClient(resolve_tracking_uri(uri))


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
    signature types its table columns Any (``signature.table_input_schema``), and a dataset
    record's schema only describes the training data."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Hint: Inferred schema contains integer column", category=UserWarning
        )
        yield


def local_artifact_dir(artifact_uri: str | None) -> Path | None:
    """The folder of a run's artifacts when the store keeps them on this machine (a ``file:``
    URI or a plain path, what MLflow's local artifact repository serves), else None. Read from
    the URI: building a repository to ask would start a thread pool per run."""
    parsed = urllib.parse.urlparse(artifact_uri or "")
    if not artifact_uri or parsed.scheme not in ("", "file"):
        return None
    return Path(urllib.request.url2pathname(parsed.path))


@contextlib.contextmanager
def artifact_folder(client: MlflowClient, run_id: str, artifact_uri: str | None) -> Iterator[Path]:
    """A folder whose files become the run's artifacts: its artifact directory itself where that
    is local (no temporary copy, no ``get_run`` to find it), else a temporary folder uploaded
    with ``log_artifacts`` when the block ends."""
    local = local_artifact_dir(artifact_uri)
    with disk_full_is_one_line(local or artifact_uri):
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
    old_env = os.environ.get("MLFLOW_TRACKING_URI")
    # get_tracking_uri() answers MLflow's default when nothing is set: that is not restored
    # as a URI, and nor is one that only came from the environment (restored below as such)
    old_uri = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        # None unsets it, as MLflow's own context manager for the URI does
        mlflow.set_tracking_uri(None if old_uri == old_env else old_uri)
        if old_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_env


def get_or_create_experiment(client: MlflowClient, tracking_uri: str, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            experiment_id = client.create_experiment(name, artifact_location(tracking_uri, name))
            mark_model_training(client, experiment_id)
            return experiment_id
        except MlflowException:  # created concurrently by another process
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    if EXPERIMENT_KIND not in experiment.tags:
        mark_model_training(client, experiment.experiment_id)
    return experiment.experiment_id


# the experiment tag MLflow 3's UI reads to open an experiment on its training runs rather than
# on the GenAI overview (traces, evaluations)
EXPERIMENT_KIND = "mlflow.experimentKind"


def mark_model_training(client: MlflowClient, experiment_id: str) -> None:
    client.set_experiment_tag(experiment_id, EXPERIMENT_KIND, "custom_model_development")


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


def log_batch(
    client: MlflowClient,
    run_id: str,
    metrics: Sequence[Metric] = (),
    params: Sequence[Param] = (),
    tags: Sequence[RunTag] = (),
) -> int:
    """``client.log_batch`` of any number of metrics, parameters and tags, in as few calls as
    MLflow's documented limits on one request allow (:func:`batches`); the number of calls."""
    calls = 0
    for chunk in batches(metrics, params, tags):
        client.log_batch(run_id, **chunk)
        calls += 1
    return calls


def batches(
    metrics: Sequence[Metric] = (), params: Sequence[Param] = (), tags: Sequence[RunTag] = ()
) -> Iterator[dict[str, list]]:
    """The ``metrics``/``params``/``tags`` of successive ``log_batch`` calls, each within MLflow's
    limits on one request: parameters and tags first, metrics in the room each call has left,
    every item once and in its order."""
    queues = {"params": list(params), "tags": list(tags), "metrics": list(metrics)}
    limits = {"params": PARAMS_PER_BATCH, "tags": TAGS_PER_BATCH, "metrics": METRICS_PER_BATCH}
    start = dict.fromkeys(queues, 0)
    while any(start[kind] < len(items) for kind, items in queues.items()):
        chunk: dict[str, list] = {kind: [] for kind in queues}
        count = size = 0
        for kind, items in queues.items():
            taken = chunk[kind]
            while start[kind] < len(items) and len(taken) < limits[kind]:
                item = items[start[kind]]
                grown = size + _json_size(item)
                if count >= ENTITIES_PER_BATCH or (count and grown > BATCH_BYTES):
                    break
                taken.append(item)
                start[kind] += 1
                count, size = count + 1, grown
        yield chunk


def _json_size(item: Metric | Param | RunTag) -> int:
    """The item's share of a request's JSON, at most: its key and (text) value as JSON strings,
    and under a hundred characters of field names, numbers and punctuation."""
    text = len(json.dumps(item.key))
    return 100 + text + (0 if isinstance(item, Metric) else len(json.dumps(str(item.value))))


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any], skip=()) -> None:
    log_batch(client, run_id, params=param_items(params, skip))


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, Any], step: int = 0) -> None:
    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step) for k, v in metrics.items() if _is_number(v)]
    log_batch(client, run_id, metrics=items)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def set_tags(client: MlflowClient, run_id: str, tags: dict[str, Any]) -> None:
    items = [RunTag(str(k), one_line(v)) for k, v in tags.items() if v is not None]
    log_batch(client, run_id, tags=items)


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
        entity = dataset_entity(ds)
    context = str(dataset.get("context") or "training")
    client.log_inputs(run_id, [DatasetInput(entity, [InputTag(MLFLOW_DATASET_CONTEXT, context)])])


def dataset_entity(dataset: Any) -> Dataset:
    """The ``mlflow.entities.Dataset`` that ``mlflow.log_input`` would log for an
    ``mlflow.data`` dataset, from its public ``to_dict`` (with the schema and profile it adds)."""
    fields = dataset.to_dict()
    return Dataset(
        name=fields["name"],
        digest=fields["digest"],
        source_type=fields["source_type"],
        source=fields["source"],
        schema=fields.get("schema"),
        profile=fields.get("profile"),
    )
