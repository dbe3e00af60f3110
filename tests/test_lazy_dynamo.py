"""torch.optim without torch._dynamo: fused FNN training and the refit never import it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from models.lazy_dynamo import METHODS, defer_dynamo_import


def test_every_wrapped_optimizer_method_is_covered() -> None:
    """A canary for torch upgrades: the deferral still finds torch's _disable_dynamo wrappers."""
    assert defer_dynamo_import() == list(METHODS)


def test_optimizer_methods_work_deferred() -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))]})
    model(torch.ones(1, 3)).sum().backward()
    opt.zero_grad()
    assert model.weight.grad is None
    state = opt.state_dict()
    opt.load_state_dict(state)
    assert len(opt.param_groups) == 2


SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    from orchestrator.crossval import cross_validate
    from orchestrator.pipeline import prepare_run, refit_and_test
    from tests.conftest import tiny_config

    config = tiny_config(**{"data.source": "builtin:iris", "training.epochs": 2})
    run = prepare_run(config)
    cv = cross_validate(run.prepared, config)
    list(cv)
    assert cv.fused is not None
    refit = refit_and_test(run, config, 2)
    print("after-training", "torch._dynamo" in sys.modules)

    import torch._dynamo  # anything may import it later: the real wrapper takes over
    fn = torch.optim.Optimizer.zero_grad.__wrapped__
    torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1).zero_grad()
    cached = getattr(fn, "__dynamo_disable")
    print("real-wrapper", cached.__module__ != "models.lazy_dynamo")
    # the stacked refit against torch.optim's (which needs dynamo, now imported)
    from orchestrator.config import apply_overrides

    plain = refit_and_test(run, apply_overrides(config, {"training.fuse_folds": "off"}), 2)
    for name in ("accuracy", "log_loss"):
        print(name, refit.test_metrics[name], plain.test_metrics[name])
    """
)


def test_fused_training_and_refit_never_import_dynamo() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())
    assert lines["after-training"] == "False"
    assert lines["real-wrapper"] == "True"
    for name in ("accuracy", "log_loss"):
        stacked, plain = map(float, lines[name].split())
        assert stacked == pytest.approx(plain, rel=1e-4), name
