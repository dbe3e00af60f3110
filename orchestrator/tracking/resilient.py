"""Tracking calls that outlive an outage of the store: retried with backoff, then given up.

An ``mlflow server`` that restarts, a network that drops for seconds, an SQLite store that
another process holds locked: each makes a call fail that succeeds a moment later. A
:class:`ResilientClient` retries such a call (0.5 s, 1 s, 2 s ... at most 8 s apart) until the
store has been unreachable for ``patience_s``; it then raises :class:`StoreUnreachable`, one
line naming the store, and so does every later call at once (the clients of one search share
one :class:`StoreHealth`), so that nothing waits twice. Other errors (a bad request, a missing
run) are not retried.

MLflow's own HTTP client retries a refused connection for about two minutes before it fails;
with a resilient client the process asks it for two retries over ~3 s (:data:`HTTP_RETRIES`,
unless the user set them), so that the writer soon knows that it must buffer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from orchestrator.errors import TrackingError

# what a store that is down, restarting or locked answers (text of the exception and causes)
TRANSIENT = (
    "Connection refused",
    "Max retries exceeded",
    "NewConnectionError",
    "ConnectionError",
    "Connection aborted",
    "RemoteDisconnected",
    "Remote end closed",
    "Read timed out",
    "database is locked",
    "status code 502",
    "status code 503",
    "status code 504",
    "Response: 502",
    "Response: 503",
    "Response: 504",
)
MAX_DELAY_S = 8.0
# MLflow's own HTTP retries (documented variables; a value the user set is kept): two, 1 s and
# 2 s apart, instead of seven over about two minutes, so that a call here fails soon enough to
# be buffered and retried by the writer, while MLflow's other calls (the final model's upload)
# still ride out a blip
HTTP_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


class StoreUnreachable(TrackingError):
    """The tracking store did not answer for the patience allowed."""


class DiskFull(TrackingError):
    """The artifact location has no room left (or a quota says so)."""


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) says the store is down, restarting or locked."""
    seen = 0
    while err is not None and seen < 5:
        text = f"{type(err).__name__}: {err}"
        if any(mark in text for mark in TRANSIENT):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


class StoreHealth:
    """Whether a store is known to be down; shared by the clients of one search."""

    def __init__(self, uri: str, patience_s: float) -> None:
        self.uri, self.patience_s = uri, patience_s
        self.down: StoreUnreachable | None = None
        self.lock = threading.Lock()

    def give_up(self, err: BaseException) -> StoreUnreachable:
        reason = " ".join(str(err).split())[:160]
        with self.lock:
            if self.down is None:
                self.down = StoreUnreachable(
                    f"the MLflow tracking store {self.uri} did not answer for "
                    f"{self.patience_s:.0f} s (tracking.retry_s): {reason}"
                )
            return self.down


class ResilientClient:
    """An ``MlflowClient`` whose calls are retried while the store cannot be reached."""

    def __init__(self, client: Any, health: StoreHealth) -> None:
        self._client, self._health = client, health
        if health.uri.startswith(("http://", "https://")):
            for key, value in HTTP_RETRIES.items():
                os.environ.setdefault(key, value)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._retry(attr, args, kwargs)

        return call

    def _retry(self, fn: Any, args: tuple, kwargs: dict) -> Any:
        health = self._health
        if health.down is not None:
            raise health.down
        delay, deadline = 0.5, None
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as err:
                if not is_transient(err):
                    raise
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + health.patience_s
                if now >= deadline or health.down is not None:
                    raise health.give_up(err) from None
                time.sleep(min(delay, deadline - now))
                delay = min(delay * 2, MAX_DELAY_S)


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """One line at once when a tracking server does not answer (before a search starts Ray):
    an ``http(s)://`` store's ``/health`` must answer within ``timeout_s``."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as reply:
            reply.read(64)
    except urllib.error.HTTPError:
        return  # it answers (a proxy in front may not serve /health): the calls will tell
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise TrackingError(
            f"the MLflow tracking server {uri} does not answer ({reason}); start it "
            f"(mlflow server --host 127.0.0.1 --port PORT), or give --tracking-uri a reachable "
            f"server or a local store such as sqlite:///mlflow.db"
        ) from None


@contextlib.contextmanager
def disk_full_is_one_line(where: Any) -> Iterator[None]:
    """A write that finds no room left (ENOSPC, a quota, a file-size limit) as one line
    naming the place: :class:`DiskFull`."""
    try:
        yield
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        raise DiskFull(
            f"the artifact location {where} is full ({err.strerror}): free space there, or "
            "give the experiment an artifact location with room (mlflow server "
            "--artifacts-destination)"
        ) from None
