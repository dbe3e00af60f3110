"""The garbage collector paused while a process imports its libraries (orchestrator/gcpause.py)."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from orchestrator import cli, gcpause
from tests.e2e_helpers import ROOT


@pytest.fixture
def gc_state():
    """Whatever a test does to the collector is undone: enabled, nothing frozen."""
    gcpause.allow()
    yield
    gc.unfreeze()
    gc.enable()
    gcpause._state.update(paused=False, allowed=False)


def test_pause_stops_collection_and_resume_freezes_what_is_alive(gc_state, monkeypatch):
    monkeypatch.delenv(gcpause.ENV, raising=False)
    gc.unfreeze()
    assert gcpause.pause() is True
    assert not gc.isenabled()
    assert gcpause.pause() is False  # already paused
    kept = [[] for _ in range(1000)]
    gcpause.resume()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(kept)  # alive at the resume: never walked again
    frozen = gc.get_freeze_count()
    gcpause.resume()  # a resume without a pause does nothing
    assert gc.get_freeze_count() == frozen and gc.isenabled()


def test_switched_off_or_already_off_the_collector_is_left_alone(gc_state, monkeypatch):
    gcpause._state["allowed"] = False  # a process that goes on (a test runner, a notebook)
    assert gcpause.pause() is False and gc.isenabled()
    gcpause.allow()
    monkeypatch.setenv(gcpause.ENV, "0")
    assert gcpause.pause() is False and gc.isenabled()
    monkeypatch.delenv(gcpause.ENV)
    gc.disable()  # someone else's choice: not ours to undo
    assert gcpause.pause() is False
    gcpause.resume()
    assert not gc.isenabled()


def test_a_worker_preloads_the_trial_with_the_collector_paused_then_resumed():
    """What a Ray worker's preload does, in a fresh interpreter: the trial's modules are
    imported, collection is on again, and the imports are frozen."""
    script = (
        "import gc, sys\n"
        "passes = []\n"
        "gc.callbacks.append(lambda phase, info: phase == 'start' and passes.append(info))\n"
        "import orchestrator.workerstart\n"
        "print('torch' in sys.modules, 'ray.tune' in sys.modules, gc.isenabled(),\n"
        "      gc.get_freeze_count() > 100_000, len(passes))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    loaded_torch, loaded_tune, enabled, frozen, passes = out.stdout.split()
    assert (loaded_torch, loaded_tune, enabled, frozen) == ("True", "True", "True", "True")
    assert int(passes) == 0  # not one collection while torch and Ray Tune were imported


def test_the_search_command_resumes_collection_even_when_ray_fails_to_start(
    gc_state, monkeypatch, tmp_path
):
    """The console script pauses the collector around Ray's start and the search's imports
    (a stand-in start here, which fails) and always resumes it."""
    import orchestrator.raystart as raystart

    seen = []

    def failing_start(address, stacked):
        seen.append(gc.isenabled())
        raise RuntimeError("no Ray today")

    monkeypatch.setattr(raystart, "start_ray_and_import", failing_start)
    monkeypatch.delenv(gcpause.ENV, raising=False)
    from click.testing import CliRunner

    result = CliRunner().invoke(cli.main, ["search", "--data", "builtin:iris", "--no-tracking"])
    assert seen == [False]  # paused while Ray started
    assert isinstance(result.exception, RuntimeError)
    assert gc.isenabled() and not gcpause._state["paused"]


def test_the_parent_run_starts_with_the_collector_paused_and_resumes_it(gc_state):
    """ParentRunStart's thread (MLflow's imports and the parent run) pauses the collector while
    it starts the run, and resumes it whether the start succeeds or fails (stand-in starts)."""
    from orchestrator.tracking.parentstart import ParentRunStart

    class Writer:
        def __init__(self):
            self.attached = []

        def attach(self, ids):
            self.attached.append(ids)

        def attach_failed(self, err):
            self.attached.append(err)

    class Tracker:
        ids = ("uri", "0", "run")

    seen = []

    def start():
        seen.append(gc.isenabled())
        return Tracker()

    writer = Writer()
    ParentRunStart(start, writer).result()
    assert seen == [False] and writer.attached == [Tracker.ids]
    assert gc.isenabled() and gc.get_freeze_count() > 0

    def failing():
        seen.append(gc.isenabled())
        raise RuntimeError("store down")

    start_ = ParentRunStart(failing, Writer())
    with pytest.raises(RuntimeError):
        start_.result()
    assert seen == [False, False] and gc.isenabled()
