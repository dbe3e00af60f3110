"""log_batch: any number of metrics, parameters and tags, in calls within MLflow's documented
limits (1,000 metrics, 100 parameters, 100 tags, 1,000 in all, 1 MB of JSON per request)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from orchestrator.tracking import stores
from tests.test_tracking_fixtures import *  # noqa: F403  (the fixtures)

ROOT = Path(__file__).resolve().parents[1]


class RecordingClient:
    """Records each ``log_batch`` call instead of writing it."""

    def __init__(self) -> None:
        self.calls: list[dict[str, list]] = []

    def log_batch(self, run_id, metrics=(), params=(), tags=()) -> None:
        self.calls.append({"metrics": list(metrics), "params": list(params), "tags": list(tags)})


def _items(n_metrics: int, n_params: int, n_tags: int, value: str = "v") -> dict[str, list]:
    return {
        "metrics": [Metric(f"m{i % 4}", float(i), 1000 + i, i // 4) for i in range(n_metrics)],
        "params": [Param(f"p{i}", f"{value}{i}") for i in range(n_params)],
        "tags": [RunTag(f"t{i}", f"{value}{i}") for i in range(n_tags)],
    }


def _request_json(call: dict[str, list]) -> int:
    """The length of a LogBatch request's JSON body, as MLflow's REST client writes it."""
    body = {
        "run_id": "0" * 32,
        "metrics": [
            {"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step}
            for m in call["metrics"]
        ],
        "params": [{"key": p.key, "value": p.value} for p in call["params"]],
        "tags": [{"key": t.key, "value": t.value} for t in call["tags"]],
    }
    return len(json.dumps(body))


@pytest.mark.parametrize(
    ("n_metrics", "n_params", "n_tags", "calls"),
    [(0, 0, 0, 0), (300, 20, 3, 1), (2500, 250, 0, 3), (2500, 250, 150, 3), (950, 0, 100, 2)],
    ids=["nothing", "one-trial", "many", "many-with-tags", "metrics-and-tags-over-1000"],
)
def test_calls_stay_within_mlflows_limits_and_carry_everything(n_metrics, n_params, n_tags, calls):
    items = _items(n_metrics, n_params, n_tags)
    client = RecordingClient()
    assert stores.log_batch(client, "run", **items) == calls == len(client.calls)
    for call in client.calls:
        assert len(call["metrics"]) <= 1000
        assert len(call["params"]) <= 100 and len(call["tags"]) <= 100
        assert 0 < sum(map(len, call.values())) <= 1000
    for kind, sent in items.items():  # every item once, in its order
        assert [x for call in client.calls for x in call[kind]] == sent


def test_long_values_are_spread_below_a_megabyte_per_request():
    # 100 parameters at MLflow's longest value and 100 long tags: ~1.1 MB in one request
    items = _items(10, 100, 100, value="\u00e9" * (stores.MAX_PARAM_LENGTH - 3))
    client = RecordingClient()
    stores.log_batch(client, "run", **items)
    assert len(client.calls) > 1
    assert all(_request_json(call) < 1_000_000 for call in client.calls)
    assert sum(len(call["params"]) for call in client.calls) == 100


def test_a_large_batch_arrives_whole_in_a_sqlite_store(tracking_uri):
    client = MlflowClient(tracking_uri)
    run_id = client.create_run(client.create_experiment("chunks")).info.run_id
    items = _items(2500, 250, 120)
    assert stores.log_batch(client, run_id, **items) == 3
    run = client.get_run(run_id)
    assert run.data.params == {p.key: p.value for p in items["params"]}
    assert {t.key: t.value for t in items["tags"]}.items() <= run.data.tags.items()
    for key in ("m0", "m1", "m2", "m3"):
        history = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in history) == list(range(625))
    assert run.data.metrics["m3"] == 2499.0  # the latest value: the last step's


def _private_mlflow_names(source: str) -> list[str]:
    """MLflow's private names that ``source`` uses: imports of ``mlflow.store`` or of an
    underscore module or name of MLflow, and, anywhere in the text, MLflow's underscore
    modules and the client's internals."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mlflow":
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "mlflow"]
        else:
            continue
        found += [n for n in names if PRIVATE_MODULE.search(n)]
    return found + [m.group(0) for m in PRIVATE_TEXT.finditer(source)]


PRIVATE_MODULE = re.compile(r"^mlflow\.store\b|\._[A-Za-z]")
PRIVATE_TEXT = re.compile(
    r"mlflow\.store\b|mlflow(\.\w+)*\._[A-Za-z]\w*|_tracking_client|_tracking_service"
    r"|\._to_mlflow_entity"
)


@pytest.mark.parametrize(
    ("source", "private"),
    [
        (
            "from mlflow.utils.validation import (\n    MAX_PARAM_VAL_LENGTH,\n    _validate,\n)",
            True,
        ),
        ("import mlflow.store.db.utils", True),
        ("from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore", True),
        ("from mlflow.tracking._tracking_service import utils", True),
        ("store = client._tracking_client.store", True),
        ("entity = dataset._to_mlflow_entity()", True),
        ("MODULES = ('mlflow.store.model_registry.sqlalchemy_store',)", True),
        ("import mlflow\nfrom mlflow import MlflowClient\nversion = mlflow.__version__", False),
        ("from mlflow.entities import Metric\nfrom mlflow.utils.mlflow_tags import X", False),
    ],
)
def test_private_names_are_recognised(source, private):
    assert bool(_private_mlflow_names(source)) == private


def test_the_product_names_no_private_mlflow_module_or_function():
    """The product reaches MLflow only through its public API (STYLE rule 11)."""
    found = {
        str(path.relative_to(ROOT)): names
        for folder in ("orchestrator", "models", "data")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (names := _private_mlflow_names(path.read_text()))
    }
    assert found == {}
