"""Joining a Ray cluster: its address, whether it answers, and the token authentication mode this
process must use, decided before Ray is imported. This module imports no Ray.

Ray reads ``RAY_AUTH_MODE`` once, when it is imported, and Ray 2.60 never turns token mode on
by itself for an explicit address, even where the cluster asks for a token and one is at hand
(``ray start --head`` turns it on whenever a token exists, and a local ``ray.init`` writes
``~/.ray/auth_token``). So :func:`prepare_join` runs first, in ``automl search``, before any
Ray import:

- ``RAY_AUTH_MODE`` set by the user: kept as it is.
- no token in any of Ray's places (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``,
  ``~/.ray/auth_token``): Ray's default, no token.
- a token but no mode: a child process joins the cluster in token mode and asks it to start an
  actor (``ray_adapter.probe_token_mode``). A cluster without token authentication cannot call
  a token-mode driver back (the actor dies before it starts); one with it accepts the token or
  refuses it. ``RAY_AUTH_MODE`` is then set to what works, in this process's environment.

Failures become one line (:class:`~orchestrator.errors.ClusterError`) that names the cause and
the variable to set.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ClusterError

MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
REACH_TIMEOUT_S = 10.0  # a TCP connection to the address
JOIN_TIMEOUT_S = 25.0  # ray.init against an address (Ray gives up on a refused token after ~20 s)
PROBE_TIMEOUT_S = 25.0
# exit statuses of the probe (ray_adapter.probe_token_mode)
PROBE_TOKEN_WORKS, PROBE_NO_TOKEN_AUTH, PROBE_TOKEN_REFUSED = 0, 10, 11
PROBE_JOINED = "automl-probe: joined"  # the probe's line once it has joined
TOKEN_HELP = (
    "set RAY_AUTH_TOKEN to the cluster's token (`ray get-auth-token` on its head prints it), "
    "RAY_AUTH_TOKEN_PATH to a file that holds it, or put it in ~/.ray/auth_token"
)


@dataclass(frozen=True)
class ClusterAccess:
    """How this process joins ``address``."""

    address: str
    token_source: str | None  # where the token comes from, as the user knows it; None: none
    mode: str | None  # RAY_AUTH_MODE as this process uses it (None: Ray's default)


_PREPARED: dict[str, ClusterAccess] = {}


def join_address(address: str | None) -> str | None:
    """The cluster to join: ``address`` (``--address``), else ``RAY_ADDRESS``, else None."""
    return address or os.environ.get("RAY_ADDRESS") or None


def token_source() -> str | None:
    """Where Ray would read a token from, in Ray's order, or None when there is none; one line
    for a ``RAY_AUTH_TOKEN_PATH`` without a token, on which Ray would abort the process."""
    if os.environ.get(TOKEN_ENV, "").strip():
        return TOKEN_ENV
    path = os.environ.get(TOKEN_PATH_ENV)
    if path:
        try:
            readable = bool(Path(path).expanduser().read_text().strip())
        except OSError:
            readable = False
        if not readable:
            raise ClusterError(
                f"{TOKEN_PATH_ENV}={path} holds no token (missing, unreadable or empty): "
                f"point it at the file with the cluster's token, or unset it"
            )
        return f"{TOKEN_PATH_ENV} ({path})"
    default = Path.home() / ".ray" / "auth_token"
    if default.is_file() and default.read_text().strip():
        return "~/.ray/auth_token"
    return None


def prepare_join(address: str | None, ray_imported: bool | None = None) -> ClusterAccess | None:
    """Before Ray is imported: check that ``address`` (or ``RAY_ADDRESS``) answers and set
    ``RAY_AUTH_MODE`` the way the cluster needs it. None when no cluster is to be joined.

    Once Ray is imported (``ray_imported``: by default, whether it is) the mode can no longer
    change, so no probe runs; a failure to join then says what to export."""
    address = join_address(address)
    if address is None:
        return None
    if address in _PREPARED:
        return _PREPARED[address]
    check_reachable(address)
    mode = os.environ.get(MODE_ENV)
    source = token_source() if mode != "disabled" else None
    if ray_imported is None:
        ray_imported = "ray" in sys.modules
    access = ClusterAccess(address, source, mode)
    if mode is None and source is not None and not ray_imported:
        verdict = probe(address)
        if verdict == PROBE_TOKEN_REFUSED:
            raise token_refused(access)
        # Ray's own rule for a cluster it starts (a token at hand: token mode), unless the
        # cluster proved it does not use token authentication
        mode = "disabled" if verdict == PROBE_NO_TOKEN_AUTH else "token"
        os.environ[MODE_ENV] = mode  # Ray's processes started from here inherit it
        access = ClusterAccess(address, source, mode)
    _PREPARED[address] = access
    return access


def host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``HOST:PORT`` address; None for other forms (``auto``,
    ``ray://...``), which Ray resolves itself."""
    if "://" in address or ":" not in address:
        return None
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        return None
    return host, int(port)


def check_reachable(address: str) -> None:
    """A TCP connection to the address, or one line: ``ray.init`` would wait minutes on an
    address where nothing listens."""
    parsed = host_port(address)
    if parsed is None:
        return
    try:
        with socket.create_connection(parsed, timeout=REACH_TIMEOUT_S):
            pass
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
        raise ClusterError(
            f"cannot reach a Ray cluster at {address}: {reason.lower()}; set --address or "
            f"RAY_ADDRESS to the address that `ray start --head` printed"
        ) from None


def probe(address: str) -> int | None:
    """The probe's verdict (``PROBE_*``), or None when it could not tell.

    It runs in a child process because this one must choose ``RAY_AUTH_MODE`` before it
    imports Ray. A probe that could not join within ``PROBE_TIMEOUT_S`` means that no Ray
    cluster answered there."""
    code = (
        "import sys; from orchestrator.ray_adapter import probe_token_mode; "
        "sys.exit(probe_token_mode(sys.argv[1]))"
    )
    env = {**os.environ, MODE_ENV: "token"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, address],
            env=env,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else err.stdout or ""
        if PROBE_JOINED not in out:
            raise no_answer(address, PROBE_TIMEOUT_S) from None
        return None  # joined, but its actor was slow to start: no verdict
    known = (PROBE_TOKEN_WORKS, PROBE_NO_TOKEN_AUTH, PROBE_TOKEN_REFUSED)
    return done.returncode if done.returncode in known else None


def no_answer(address: str, seconds: float) -> ClusterError:
    return ClusterError(
        f"no Ray cluster answered at {address} within {seconds:.0f} s: set --address or "
        f"RAY_ADDRESS to the address that `ray start --head` printed (its port is 6379 by "
        f"default, not the dashboard's)"
    )


def token_refused(access: ClusterAccess) -> ClusterError:
    return ClusterError(
        f"the Ray cluster at {access.address} refused the token from {access.token_source}: "
        f"{TOKEN_HELP}"
    )


def auth_failure(access: ClusterAccess) -> ClusterError:
    """The one line for a cluster that turned this process away for its token (or its lack
    of one), given the mode this process joined in."""
    where = f"the Ray cluster at {access.address} asks for a token"
    if access.mode == "token":
        if access.token_source is None:
            return ClusterError(f"{where} and none was found: {TOKEN_HELP}")
        return token_refused(access)
    if access.mode is not None:
        return ClusterError(
            f"{where}, but {MODE_ENV}={access.mode}: set {MODE_ENV}=token (or unset it), "
            f"and {TOKEN_HELP}"
        )
    if access.token_source is None:
        return ClusterError(f"{where} and none was found: {TOKEN_HELP}")
    return ClusterError(
        f"{where}: export {MODE_ENV}=token before Python imports Ray (the token in "
        f"{access.token_source} is then used)"
    )
