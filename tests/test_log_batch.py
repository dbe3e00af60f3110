"""log_batch: any number of metrics, parameters and tags, in calls within MLflow's documented
limits (1,000 metrics, 100 parameters, 100 tags, 1,000 in all, 1 MB of JSON per request)."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from orchestrator.tracking import stores
from tests.test_tracking_fixtures import *  # noqa: F403  (the fixtures)


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
