"""Ray and Ray Tune's runtime for a search, through their public APIs.

- :func:`ensure_ray` starts Ray on this machine or joins a cluster (``--address`` /
  ``RAY_ADDRESS``), with the token authentication mode ``orchestrator.raycluster`` chose for it
  and within a bounded time; :func:`stop_ray` stops it with ``ray.shutdown()``, which only
  disconnects a driver from a cluster it joined. :func:`probe_token_mode` is that module's
  probe, run in a child process.
- :class:`TrialEvents` is the thin Tune callback on the driver that turns Tune's trial events
  into plain values (trial id, dotted overrides, the tracking payload, an error line) for
  listeners that know nothing of Ray: the MLflow writer (``orchestrator.tracking.writer``).
- :class:`TrialPrinter` hands each finished trial to the command line's printer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any, Protocol

from ray import tune

from orchestrator import raycluster
from orchestrator.errors import ClusterError
from orchestrator.outer_run import stash_outer_run_id
from orchestrator.space import decode_point
from orchestrator.trials import TrialSummary, dominates, error_line, objective_key, summarize

# the tracking payload of a trial's report (``orchestrator.trial``); TrialEvents empties it
# before Tune stores the result
RESULT_KEY = "automl_log"


# what every ray.init of a search passes: no dashboard, Ray's logging and workers' output
# left alone
QUIET: dict[str, Any] = {
    "include_dashboard": False,
    "configure_logging": False,
    "log_to_driver": False,
}


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start Ray embedded on this machine, or join ``address`` / ``RAY_ADDRESS``.

    ``MLFLOW_RUN_ID`` leaves the environment first (``orchestrator.outer_run``): Ray's
    processes inherit the driver's environment. A Ray already initialised in this process is
    used as it is. A cluster that cannot be joined raises :class:`ClusterError` (one line):
    nothing answers there, or its token authentication turned this process away.
    """
    import ray

    stash_outer_run_id()
    if ray.is_initialized():
        return
    access = raycluster.prepare_join(address)
    if access is None:
        local = {"num_cpus": num_cpus} if num_cpus is not None else {}
        ray.init(address=None, **QUIET, **local)
        return
    join_cluster(access)


def join_cluster(access: raycluster.ClusterAccess) -> None:
    """``ray.init(address=...)``, bounded: Ray waits without end on an address where something
    that is not a Ray cluster listens, so it runs in a thread that this one waits for at most
    ``JOIN_TIMEOUT_S`` (Ray gives up on a refused token after ~20 s)."""
    import ray

    failures: list[BaseException] = []

    def connect() -> None:
        try:
            ray.init(address=access.address, **QUIET)
        except BaseException as err:  # handed to the waiting thread
            failures.append(err)

    thread = threading.Thread(target=connect, name="automl-ray-join", daemon=True)
    ray_logger = logging.getLogger("ray")
    level = ray_logger.level
    # Ray warns that a thread other than the main one cannot install its SIGTERM handler
    ray_logger.setLevel(logging.ERROR)
    with tempfile.TemporaryFile() as held:
        try:
            with _stderr_into(held):
                thread.start()
                thread.join(raycluster.JOIN_TIMEOUT_S)
        finally:
            ray_logger.setLevel(level)
        if not failures and not thread.is_alive():  # joined: what Ray wrote is the user's
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
    if thread.is_alive():
        raise raycluster.no_answer(access.address, raycluster.JOIN_TIMEOUT_S)
    if failures:
        err = failures[0]
        if is_auth_failure(err):
            raise raycluster.auth_failure(access) from None
        if isinstance(err, Exception):
            raise ClusterError(
                f"cannot join the Ray cluster at {access.address}: {_first_line(err)}"
            )
        raise err


@contextlib.contextmanager
def _stderr_into(held: IO[bytes]) -> Iterator[None]:
    """File descriptor 2 into ``held`` meanwhile: a refused join has Ray's C++ core log one
    line a second for ~20 s, where the user gets one line from us instead."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(held.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def is_auth_failure(err: BaseException) -> bool:
    """Whether Ray turned this process away for its token: Ray raises ``AuthenticationError``,
    or, from ``ray.init``, a ``ConnectionError`` whose cause quotes it."""
    from ray.exceptions import AuthenticationError

    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, AuthenticationError) or "InvalidAuthToken" in str(cause):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def probe_token_mode(address: str) -> int:
    """``raycluster``'s probe, in a child process that has ``RAY_AUTH_MODE=token``: join
    ``address`` and start a zero-CPU actor. A cluster without token authentication cannot call
    a token-mode driver back, so the actor dies before it starts (``PROBE_NO_TOKEN_AUTH``); a
    cluster with it runs the actor (``PROBE_TOKEN_WORKS``) or refuses the token
    (``PROBE_TOKEN_REFUSED``). Any other failure: 1, no verdict."""
    import ray

    try:
        ray.init(address=address, **QUIET)
    except Exception as err:
        return raycluster.PROBE_TOKEN_REFUSED if is_auth_failure(err) else 1
    print(raycluster.PROBE_JOINED, flush=True)

    @ray.remote(num_cpus=0)
    class Echo:
        def ping(self) -> bool:
            return True

    try:
        ray.get(Echo.remote().ping.remote(), timeout=raycluster.PROBE_TIMEOUT_S)
    except ray.exceptions.ActorDiedError:
        return raycluster.PROBE_NO_TOKEN_AUTH
    except Exception:
        return 1
    return raycluster.PROBE_TOKEN_WORKS


def stop_ray() -> None:
    """``ray.shutdown()`` if Ray is initialised in this process (a joined cluster keeps
    running: the driver only disconnects)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


def cluster_cpus() -> int:
    """The CPUs of the Ray this process is connected to."""
    import ray

    return int(ray.cluster_resources().get("CPU", 1))


def check_trial_resources(cpus_per_trial: float, gpus_per_trial: float) -> None:
    """One line, at once, when no node of the cluster could ever run a trial: Ray would
    otherwise keep the trials pending without a word (a GPU asked for on a machine without
    one waited past 300 s). Sized against the largest node, as one trial runs on one node."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    most_cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    most_gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    total = ray.cluster_resources()
    has = (
        f"the cluster has {total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs on "
        f"{len(nodes)} node(s), at most {most_cpus:g} CPUs and {most_gpus:g} GPUs on one"
    )
    if gpus_per_trial > most_gpus:
        raise ClusterError(
            f"--gpus-per-trial {gpus_per_trial:g} cannot be met: {has}; "
            f"use --gpus-per-trial {most_gpus:g}{' or less' if most_gpus else ''}"
        )
    if cpus_per_trial > most_cpus:
        raise ClusterError(
            f"--cpus-per-trial {cpus_per_trial:g} cannot be met: {has}; "
            f"use --cpus-per-trial {most_cpus:g} or less"
        )


class TrialListener(Protocol):
    """What :class:`TrialEvents` calls, on Tune's event loop (the writer queues and returns)."""

    def trial_started(self, trial_id: str, overrides: dict[str, Any]) -> None: ...

    def trial_result(self, trial_id: str, payload: dict[str, Any]) -> None: ...

    def trial_completed(self, trial_id: str) -> None: ...

    def trial_failed(self, trial_id: str, error: str) -> None: ...

    def close(self) -> None: ...


_RUNNING: list[TrialEvents] = []  # the callback of the search this process is running


def _running_events() -> tune.Callback:
    """What a pickled :class:`TrialEvents` becomes when Tune unpickles it (``Tuner.restore``
    restores the run config, callbacks included): the running search's callback."""
    return _RUNNING[-1] if _RUNNING else tune.Callback()


class TrialEvents(tune.Callback):
    """Tune's trial events as plain values, for ``listener``.

    Use it as a context manager around ``Tuner.fit``: Tune pickles its callbacks into the
    experiment folder, and a resumed search gets them back from there; the pickle names "the
    callback of the search being run", never a stale writer or a live thread.
    """

    def __init__(self, listener: TrialListener) -> None:
        self.listener = listener

    def __enter__(self) -> TrialEvents:
        _RUNNING.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.listener.close()
        finally:
            _RUNNING.remove(self)

    def __reduce__(self):
        return (_running_events, ())

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.listener.trial_started(trial.trial_id, decode_point(dict(trial.config)))

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        payload = result.get(RESULT_KEY)
        if not isinstance(payload, dict):
            return
        # Tune passes callbacks a shallow copy of the result and keeps the original as the
        # trial's last result: emptying the shared payload keeps the CV arrays out of it
        data = dict(payload)
        payload.clear()
        self.listener.trial_result(trial.trial_id, data)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.listener.trial_completed(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.listener.trial_failed(trial.trial_id, trial_error(trial))

    def on_experiment_end(self, trials, **info) -> None:
        self.listener.close()


class TrialPrinter(tune.Callback):
    """Tune's trial events, on the driver, for the command line's view (orchestrator.progress)."""

    _latest: weakref.ref[TrialPrinter] | None = None

    def __init__(self, on_trial: Callable[[TrialSummary], None] | None) -> None:
        self.on_trial, self.stepped = on_trial or (lambda summary: None), False
        TrialPrinter._latest = weakref.ref(self)

    def __reduce__(self):  # pickled with the experiment: never the view (a terminal, a thread)
        return (TrialPrinter.current, ())

    @classmethod
    def current(cls) -> TrialPrinter:  # the latest made here: a resume makes one before Tune's
        return (cls._latest() if cls._latest is not None else None) or cls(None)

    def _tell(self, event: str, *args: Any) -> None:
        getattr(self.on_trial, event, lambda *args: None)(*args)

    def setup(self, total_num_samples=None, **info) -> None:
        self._tell("search_started", total_num_samples)

    def on_step_begin(self, iteration, trials, **info) -> None:
        if not self.stepped:  # a restored search's ended trials are there at its first step
            self.stepped = True
            self._tell("search_resumed", [_live_summary(t) for t in trials if t.is_finished()])

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._tell("trial_started", trial.trial_id, decode_point(dict(trial.config)))

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self._tell("trial_result", trial.trial_id, result)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.on_trial(_live_summary(trial))

    on_trial_error = on_trial_complete  # Tune has set the trial's status (ERROR) by then

    def on_experiment_end(self, trials, **info) -> None:
        self.on_step_begin(0, trials)  # a resumed search that had nothing left to run
        self._tell("search_ended")


def _live_summary(trial) -> TrialSummary:
    """A trial as Tune ended it, as ``trials.summarize`` reads it (no refit_epochs: STOPPED)."""
    ended = SimpleNamespace(metrics=trial.last_result, config=trial.config, path="", error=None)
    summary = summarize(ended, max_epochs=sys.maxsize)
    summary.trial_id = trial.trial_id
    if trial.status == "ERROR":
        summary.status, summary.error = "ERROR", trial_error(trial)
    return summary


def trial_error(trial) -> str:
    """A failed trial's root cause as one line, from the error files Tune has just written."""
    from ray import cloudpickle

    try:
        with open(trial.pickled_error_file, "rb") as f:
            return error_line(cloudpickle.load(f))
    except Exception:
        pass
    try:
        lines = Path(trial.error_file).read_text().strip().splitlines()
    except Exception:
        lines = []
    return lines[-1] if lines else "the trial failed"


# a trial's fold models (``search.refit: folds``), pickled, in its last report (orchestrator.trial)
FOLDS_KEY = "automl_folds"


class FoldModels(tune.Callback):
    """Keeps the fold models of the best trials so far in ``folder``, on the driver.

    Under ``search.refit: folds`` a trial's last report carries its k fold models, pickled,
    under :data:`FOLDS_KEY` (``{"models": bytes}``). They are taken out of the result here, as
    :class:`TrialEvents` does with its payload, so Tune's result files never see them, and kept
    as ``<trial_id>.pkl`` while no other trial beats that trial on every objective (one: it is
    tied for the best by ``cv_<metric>_mean``; two: it is on the Pareto front so far, from
    which ``search.pick`` chooses at the end). The folder is the search's own, so a resumed
    search still has the models of the trials it does not re-run.
    """

    def __init__(self, folder: Path, objectives: Any) -> None:
        self.folder = folder
        self.keys = [objective_key(m) for m in objectives.metrics]
        self.signs = [1.0 if mode == "max" else -1.0 for mode in objectives.modes]
        self.kept: dict[str, tuple[float, ...]] = {}  # trial id -> signed scores, undominated

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        box = result.get(FOLDS_KEY)
        if not isinstance(box, dict) or "models" not in box:
            return
        blob = box.pop("models")
        scores = [result.get(key) for key in self.keys]
        if not all(isinstance(v, int | float) and v == v for v in scores):
            return
        score = tuple(sign * float(v) for sign, v in zip(self.signs, scores, strict=True))
        if any(dominates(kept, score) for kept in self.kept.values()):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{trial.trial_id}.pkl"
        part = path.with_suffix(".part")
        part.write_bytes(blob)
        part.replace(path)
        self.kept[trial.trial_id] = score
        for trial_id, kept in list(self.kept.items()):
            if dominates(score, kept):
                (self.folder / f"{trial_id}.pkl").unlink(missing_ok=True)
                del self.kept[trial_id]
