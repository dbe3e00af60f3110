"""The REST scoring server under stress, in a real `automl serve` process on 127.0.0.1: many
concurrent clients, an oversized body, slow clients, and the address it listens on.

Latencies of the load test are printed and kept in ``test-output/serving_stress.json``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest
import requests

from tests.test_serving_batch import *  # noqa: F403  (the fixtures)
from tests.test_serving_batch import raw_rows
from tests.test_serving_rest import free_port, running_server, split
from tests.test_tracking_fixtures import *  # noqa: F403

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "test-output" / "serving_stress.json"
REQUESTS, CLIENTS, ROWS = 2000, 16, 4
FAST = 2.0  # seconds a normal request may take while slow clients trickle


@pytest.fixture(scope="module")
def server(logged_model):
    """`automl serve` with its defaults (host, body limit): (base URL, port)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "orchestrator.cli",
        "serve",
        "--model",
        f"models:/{logged_model['registered_model']}@champion",
        "--port",
        str(port),
        "--tracking-uri",
        logged_model["tracking_uri"],
    ]
    with running_server(command, port) as url:
        yield url, port


@pytest.fixture(scope="module")
def body(logged_model) -> str:
    return json.dumps({"dataframe_split": split(raw_rows(logged_model["result"], ROWS))})


def post(session: requests.Session | None, url: str, data, timeout: float = 30):
    return (session or requests).post(
        f"{url}/invocations",
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=timeout,
    )


def answered(response: requests.Response) -> bool:
    return response.status_code == 200 and len(response.json()["predictions"]) == ROWS


def test_2000_requests_from_16_clients(server, body):
    url, _ = server
    local, sessions = threading.local(), []

    def call(_: int) -> tuple[float, bool]:
        if not hasattr(local, "session"):  # one keep-alive connection per client
            local.session = requests.Session()
            sessions.append(local.session)
        start = time.perf_counter()
        response = post(local.session, url, body)
        return time.perf_counter() - start, answered(response)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        results = list(pool.map(call, range(REQUESTS), timeout=120))
    wall = time.perf_counter() - start
    for session in sessions:
        session.close()
    latency = np.array([seconds for seconds, _ in results]) * 1000
    stats = {
        "requests": REQUESTS,
        "clients": CLIENTS,
        "rows_per_request": ROWS,
        "p50_ms": round(float(np.percentile(latency, 50)), 2),
        "p99_ms": round(float(np.percentile(latency, 99)), 2),
        "max_ms": round(float(latency.max()), 2),
        "requests_per_s": round(REQUESTS / wall, 1),
        "wall_s": round(wall, 2),
    }
    print(f"\nserving stress: {json.dumps(stats)}")
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(stats, indent=2) + "\n")
    failed = sum(not ok for _, ok in results)
    assert failed == 0, f"{failed} of {REQUESTS} requests not answered 200 with {ROWS} predictions"


def chunks(data: bytes, size: int):
    """``data`` as a generator: requests sends it chunked, with no Content-Length."""
    return (data[i : i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_20_mb_body_is_refused_and_the_server_keeps_serving(server, body, chunked):
    url, _ = server
    big = b"x" * (20 << 20)
    response = post(None, url, chunks(big, 1 << 20) if chunked else big)
    assert response.status_code == 413, response.text[:200]
    message = response.json()["message"]
    assert "\n" not in message and "limit of 10 MiB (--max-body-mb)" in message, message
    assert answered(post(None, url, body, timeout=5))


def test_a_chunked_body_under_the_limit_is_served(server, body):
    url, _ = server
    assert answered(post(None, url, chunks(body.encode(), 7), timeout=5))


def _trickle(sock: socket.socket, data: bytes, stop: threading.Event) -> list[int]:
    """Send ``data`` on ``sock`` one byte a second until ``stop``; the list counts bytes sent."""
    sent = [0]

    def run() -> None:
        for i in range(len(data)):
            if stop.wait(1.0 if i else 0):
                return
            sock.sendall(data[i : i + 1])
            sent[0] += 1

    threading.Thread(target=run, daemon=True).start()
    return sent


def _timed_requests(url: str, body: str, seconds: float) -> list[float]:
    times = []
    deadline = time.monotonic() + seconds
    with requests.Session() as session:
        while time.monotonic() < deadline:
            start = time.perf_counter()
            assert answered(post(session, url, body, timeout=FAST * 5))
            times.append(time.perf_counter() - start)
            time.sleep(0.1)
    return times


def test_slow_clients_do_not_block_the_others(server, body):
    url, port = server
    payload = body.encode()
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode()
    stop = threading.Event()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as in_head,
        socket.create_connection(("127.0.0.1", port), timeout=10) as in_body,
    ):
        _trickle(in_head, head, stop)  # slow in its request line and headers
        in_body.sendall(head)
        sent = _trickle(in_body, payload, stop)  # slow in its body
        try:
            times = _timed_requests(url, body, seconds=4.0)
        finally:
            stop.set()
        assert len(times) >= 10 and max(times) < FAST, times
        assert 0 < sent[0] < len(payload)
        time.sleep(0.05)  # the trickling thread has stopped between two bytes
        in_body.sendall(payload[sent[0] :])  # the slow client itself is answered in the end
        reply = _read_reply(in_body)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]


def _read_reply(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(TimeoutError):
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def test_server_listens_on_loopback_only_by_default(server):
    _, port = server
    listening = {
        conn.laddr.ip
        for conn in psutil.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port
    }
    # bound to loopback alone: no other interface reaches it (nothing is sent to any address
    # but 127.0.0.1 to show it: a test here talks to loopback only)
    assert listening == {"127.0.0.1"}


def test_host_option_reaches_the_server(monkeypatch):
    """`--host` is what uvicorn binds; without it, 127.0.0.1 (checked live above)."""
    import uvicorn
    from click.testing import CliRunner

    from orchestrator import serving
    from orchestrator.cli import main

    bound = []
    monkeypatch.setattr(serving, "build_app", lambda *args, **kwargs: "app")
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: bound.append((host, port)))
    for args in ([], ["--host", "0.0.0.0"]):
        result = CliRunner().invoke(main, ["serve", "--model", "m", "--port", "5009", *args])
        assert result.exit_code == 0, result.output
    assert bound == [("127.0.0.1", 5009), ("0.0.0.0", 5009)]


def test_body_limit_is_an_option_of_the_server(monkeypatch, capsys):
    from orchestrator import serving

    got = []
    monkeypatch.setattr(serving, "build_app", lambda uri, tracking, mb: got.append(mb))
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: None)
    assert serving.main(["--model", "m"]) == 0
    assert serving.main(["--model", "m", "--max-body-mb", "0.5"]) == 0
    assert got == [10.0, 0.5]
    monkeypatch.undo()
    assert serving.main(["--model", "m", "--max-body-mb", "0"]) == 2
    assert "--max-body-mb must be a positive number of MiB, got 0.0" in capsys.readouterr().err
