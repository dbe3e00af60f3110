"""The shape ARCHITECTURE.md promises, checked on the source: engines through their public APIs,
short functions, and an orchestrator package whose import pulls in nothing. (The import layers
themselves are import-linter contracts in pyproject.toml, run by `make lint`.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("orchestrator", "models", "data")
# private or internal names of Ray, Ray Tune and MLflow, and interpreter-exit internals
PRIVATE = (
    "ray._private",
    "ray.air._internal",
    "tune.execution",
    "_ActorClassCache",
    "TuneController",
    "mlflow.store.",
    "_tracking_client",
    "_tracking_service",
    "threading._shutdown",
    "os._exit",
    "_system_config",
)


def _sources(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("name", PRIVATE)
def test_no_private_engine_name_in_the_product(name):
    found = [str(p.relative_to(ROOT)) for p in _sources(*PACKAGES) if name in p.read_text()]
    assert found == [], f"{name} used in {found}"


def test_no_private_module_or_name_of_an_engine_is_imported():
    """An import of Ray, MLflow or torch whose module path or imported name is private."""
    found = []
    for path in _sources(*PACKAGES):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules, names = [node.module], [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                modules, names = [a.name for a in node.names], []
            else:
                continue
            for module in modules:
                if module.split(".")[0] not in ("ray", "mlflow", "torch"):
                    continue
                if any(p.startswith("_") for p in module.split(".")[1:]) or any(
                    n.startswith("_") for n in names
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {module} {names}")
    # torch is pinned: its fused Adam kernel and the deferred torch._dynamo import may stay
    allowed = {"models/lazy_dynamo.py", "models/stacked_optim.py"}
    assert [f for f in found if f.split(":")[0] not in allowed] == []


def test_no_function_in_the_orchestrator_is_over_60_lines():
    long = []
    for path in _sources("orchestrator"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.name} ({lines} lines)")
    assert long == []


def test_the_orchestrator_package_imports_nothing():
    tree = ast.parse((ROOT / "orchestrator" / "__init__.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


def test_no_automl_environment_switches_remain():
    """Every setting is a documented config key (docs/config.md), not an AUTOML_* variable."""
    found = [str(p.relative_to(ROOT)) for p in _sources(*PACKAGES) if "AUTOML_" in p.read_text()]
    assert found == []
