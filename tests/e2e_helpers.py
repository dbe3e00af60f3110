"""Real processes for the end-to-end tests: an MLflow server on a free loopback port, and
headless Chromium driven by Selenium through Debian's chromedriver (no fixtures here)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
SERVER_START_TIMEOUT = 120.0  # a fresh `mlflow server` takes 10-25 s on a busy 2-core machine
SERVER_STOP_TIMEOUT = 15.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# the flags that keep Chromium off the (closed) network and out of any existing profile
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
MLFLOW_RUN_VARIABLES = {
    "MLFLOW_RUN_ID",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
}
INSTALL_CHROMIUM = (
    "install it with `apt-get update && apt-get install -y chromium chromium-driver` "
    "(`make test` does this when run as root)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without MLflow's run/store variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in MLFLOW_RUN_VARIABLES}
    env.update(extra)
    return env


def script_result(script: str, *args: str, timeout: int = 280, drop=("RAY_",)) -> str:
    """Run ``script`` in a fresh interpreter from the repository root (without the environment
    variables starting with ``drop``); returns the rest of its ``RESULT `` line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    return line.removeprefix("RESULT ")


def stop_process_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group started with ``start_new_session``, then SIGKILL what is left.

    ``mlflow server`` forks uvicorn (and, unless disabled, job consumers) into its group; ending
    only the leader would leave them holding the port.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=SERVER_STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError):  # whatever the leader left behind
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def log_tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else "(no log)"


@contextlib.contextmanager
def mlflow_server(backend_store_uri: str, workdir: Path, *extra_args: str) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 at a free port, run in ``workdir``; yields its base URL.

    Waits (bounded) for ``/health`` and always ends the whole process group.
    """
    port = free_port()
    log = workdir / f"mlflow-server-{port}.log"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        *extra_args,
    ]
    # the job runner (GenAI scorers) forks a dozen consumers we do not need
    env = clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log_tail(log)}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"mlflow server did not answer /health within {SERVER_START_TIMEOUT:.0f} s:\n"
                    f"{log_tail(log)}"
                )
            time.sleep(0.3)
        yield url
    finally:
        stop_process_group(proc)


# --------------------------------------------------------------------------- the browser
def chromium_paths() -> tuple[str, str]:
    """``(chromium, chromedriver)``; fails the test, saying how to install them, when absent."""
    browser = next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None,
    )
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = "chromium" if browser is None else "chromedriver"
        pytest.fail(
            f"the MLflow UI test needs headless Chromium; {missing} is not on PATH: "
            f"{INSTALL_CHROMIUM}"
        )
    return browser, driver


@contextlib.contextmanager
def headless_chromium(workdir: Path, width: int = 1600, height: int = 1000):
    """A Selenium WebDriver on headless Chromium with a new empty profile; always quits."""
    browser, driver_path = chromium_paths()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(
            "the MLflow UI test drives Chromium with Selenium, which is not installed: "
            "`pip install -e '.[dev]'` (selenium is a dev dependency)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = browser  # with both paths given, Selenium Manager stays offline
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-', dir=workdir)}")
    service = Service(executable_path=driver_path, log_output=str(workdir / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (after checking the signature)."""
    assert data[:8] == PNG_SIGNATURE, f"not a PNG: {data[:16]!r}"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
