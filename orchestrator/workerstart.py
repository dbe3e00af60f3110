"""What a local Ray's trial worker preloads (``preload_python_modules``): the trainable's
modules (:mod:`orchestrator.trial`: torch, ray.tune, the models), imported with the garbage
collector paused (:mod:`orchestrator.gcpause`)."""

from orchestrator import gcpause

gcpause.allow()
_paused = gcpause.pause()
try:
    import orchestrator.trial  # noqa: F401
finally:
    if _paused:
        gcpause.resume()
