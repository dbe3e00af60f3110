"""Building a ``torch.optim`` optimizer without importing ``torch._dynamo``.

``Optimizer.add_param_group`` (and ``zero_grad``, ``state_dict``, ``load_state_dict``) are wrapped
by ``torch._disable_dynamo``, which imports ``torch._dynamo`` on the first call so that the method
can be excluded from ``torch.compile``. That import costs about 2.5 s of CPU in every process (each
Ray worker, and the driver) although nothing here compiles. Fused folds never call the optimizer's
``step`` (``models/stacked_optim.py`` updates them), so with this deferral a worker that only trains
fused FNN folds never imports ``torch._dynamo``.

The deferral keeps the semantics: while ``torch._dynamo`` is not imported nothing can be compiling,
so calling the method directly is what ``disable`` would do; once anything imports it (a
``torch.compile``, an optimizer's ``step``, an ONNX export), the next call installs the real
``disable`` wrapper, exactly as torch would have.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch

# the Optimizer methods that torch wraps with _disable_dynamo (torch 2.13)
METHODS = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")
_CACHE = "__dynamo_disable"  # the attribute torch._compile._disable_dynamo caches its wrapper in


def _deferred(fn: Callable[..., Any], recursive: bool) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        dynamo = sys.modules.get("torch._dynamo")
        disable = getattr(dynamo, "disable", None)  # None too while it is half imported
        if disable is None:
            return fn(*args, **kwargs)
        real = disable(fn, recursive, wrapping=False)
        setattr(fn, _CACHE, real)
        return real(*args, **kwargs)

    return call


def defer_dynamo_import() -> list[str]:
    """Install the deferral on ``torch.optim.Optimizer``; the names of the methods it covers.

    A method whose wrapper does not look like torch 2.13's ``_disable_dynamo`` is left alone
    (then torch imports ``torch._dynamo`` as before: slower, never wrong).
    """
    covered = []
    for name in METHODS:
        inner = getattr(torch.optim.Optimizer, name, None)
        fn = getattr(inner, "__wrapped__", None)
        code, cells = getattr(inner, "__code__", None), getattr(inner, "__closure__", None)
        if fn is None or code is None or not cells:
            continue
        free = dict(zip(code.co_freevars, (c.cell_contents for c in cells), strict=False))
        if free.get("fn") is not fn or "recursive" not in free:
            continue
        if getattr(fn, _CACHE, None) is None:
            setattr(fn, _CACHE, _deferred(fn, bool(free["recursive"])))
        covered.append(name)
    return covered
