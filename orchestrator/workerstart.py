"""What a local Ray's trial worker preloads (``preload_python_modules``): the trainable's
modules (:mod:`orchestrator.trial`: torch, ray.tune, the models), imported with the garbage
collector paused (:mod:`orchestrator.gcpause`), and IPython refused as in the console script
(:mod:`orchestrator.leanimports`): a trial worker never runs in a notebook, yet Ray Tune's
``Trainable.__init__`` imports IPython only to switch its notebook output off (~0.35 s of CPU
per worker, before its first trial)."""

from orchestrator import gcpause
from orchestrator.leanimports import block_notebook_probes

block_notebook_probes()
gcpause.allow()
with gcpause.paused():
    import orchestrator.trial  # noqa: F401
