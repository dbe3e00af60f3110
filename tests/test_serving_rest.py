"""The REST scoring server in a real process on 127.0.0.1: predictions, bad requests, load."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import requests

from tests.test_serving_batch import *  # noqa: F403  (the fixtures)
from tests.test_serving_batch import raw_rows
from tests.test_tracking_fixtures import *  # noqa: F403

START_TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(command: list[str], port: int, env: dict | None = None):
    """Start ``command``, wait for /ping (bounded), yield the base URL, always terminate."""
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not answer /ping within {START_TIMEOUT:.0f} s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        proc.stderr.close()


@pytest.fixture(scope="module")
def server(logged_model):
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "orchestrator.serving",
        "--model",
        f"models:/{logged_model['registered_model']}@champion",
        "--port",
        str(port),
        "--tracking-uri",
        logged_model["tracking_uri"],
    ]
    with running_server(command, port) as url:
        yield url


def invoke(url: str, body, timeout: float = 10) -> requests.Response:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.post(
        f"{url}/invocations",
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=timeout,
    )


def split(frame: pd.DataFrame) -> dict:
    return json.loads(frame.to_json(orient="split", index=False))


def as_frame(response: requests.Response) -> pd.DataFrame:
    assert response.status_code == 200, response.text
    return pd.DataFrame(response.json()["predictions"])


@pytest.mark.parametrize("fmt", ["dataframe_split", "dataframe_records", "inputs"])
def test_predictions_equal_in_process_predictor(server, logged_model, fmt):
    raw = raw_rows(logged_model["result"])
    if fmt == "inputs":  # MLflow parses a null in a string column of `inputs` as the text "None"
        raw.loc[2, "color"] = "green"
    body = {
        "dataframe_split": {"dataframe_split": split(raw)},
        "dataframe_records": {"dataframe_records": json.loads(raw.to_json(orient="records"))},
        "inputs": {"inputs": {c: split(raw[[c]])["data"] for c in raw.columns}},
    }[fmt]
    if fmt == "inputs":
        body["inputs"] = {c: [row[0] for row in v] for c, v in body["inputs"].items()}
    expected = logged_model["result"].predictor.predict(raw)
    pd.testing.assert_frame_equal(as_frame(invoke(server, body)), expected, atol=1e-6)


def test_ping_and_version(server):
    import mlflow

    assert requests.get(f"{server}/ping", timeout=5).status_code == 200
    assert requests.get(f"{server}/version", timeout=5).text == mlflow.__version__


def _bad_requests(raw: pd.DataFrame) -> dict:
    return {
        "malformed-json": ("{not json", "valid JSON"),
        "no-input-field": ({"rows": []}, "exactly one of the input fields"),
        "missing-column": (  # x1 had no gaps in training, so it is required (x2 is optional)
            {"dataframe_split": split(raw.drop(columns=["x1"]))},
            r"missing column\(s\): x1",
        ),
        "extra-column": (
            {"dataframe_split": split(raw.assign(zz=1.0))},
            r"unexpected column\(s\): zz",
        ),
        "empty-batch": (
            {"dataframe_split": {"columns": list(raw.columns), "data": []}},
            "the batch is empty",
        ),
        "flat-array": ({"inputs": [[1.0, 2.0]]}, r"missing column\(s\)|model expects"),
    }


BAD = [
    "malformed-json",
    "no-input-field",
    "missing-column",
    "extra-column",
    "empty-batch",
    "flat-array",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_request_gets_400_and_server_keeps_serving(server, logged_model, case):
    body, match = _bad_requests(raw_rows(logged_model["result"], 3))[case]
    response = invoke(server, body)
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert pd.Series([message]).str.contains(match).all(), message
    assert requests.get(f"{server}/ping", timeout=5).status_code == 200
    good = invoke(server, {"dataframe_split": split(raw_rows(logged_model["result"], 2))})
    assert good.status_code == 200


def test_text_in_a_number_column_reads_as_missing_like_in_training(server, logged_model):
    # the cleaning at training sets stray text in a numeric column to missing; a request too
    raw = raw_rows(logged_model["result"], 3)
    got = as_frame(invoke(server, {"dataframe_split": split(raw.assign(x1="abc"))}))
    expected = logged_model["result"].predictor.predict(raw.assign(x1=float("nan")))
    pd.testing.assert_frame_equal(got, expected, atol=1e-6)


def test_200_requests_from_8_threads_good_and_bad_mixed(server, logged_model):
    raw = raw_rows(logged_model["result"], 4)
    body = json.dumps({"dataframe_split": split(raw)})
    expected = logged_model["result"].predictor.predict(raw)
    bad_body = json.dumps({"dataframe_split": split(raw.assign(zz=1))})

    def call(i: int) -> int:
        response = invoke(server, bad_body if i % 50 == 0 else body, timeout=30)
        if i % 50 and i % 7 == 0:
            pd.testing.assert_frame_equal(as_frame(response), expected, atol=1e-6)
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(call, range(200), timeout=120))
    assert codes.count(400) == 4 and codes.count(200) == 196


@pytest.mark.slow
def test_mlflow_models_serve_serves_the_same_model(logged_model):
    """``mlflow models serve --env-manager local`` on the same URI gives the same predictions."""
    raw = raw_rows(logged_model["result"])
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        f"models:/{logged_model['registered_model']}@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    env = {"MLFLOW_TRACKING_URI": logged_model["tracking_uri"]}
    with running_server(command, port, env) as url:
        got = as_frame(invoke(url, {"dataframe_split": split(raw)}, timeout=30))
        pd.testing.assert_frame_equal(got, logged_model["result"].predictor.predict(raw), atol=1e-6)
        missing = invoke(url, {"dataframe_split": split(raw.drop(columns=["x1"]))})
        assert missing.status_code == 400 and "x1" in missing.json()["message"]
