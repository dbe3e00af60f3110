"""docs/config.md, the configuration reference generated from ``Config``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from orchestrator.config import Config
from orchestrator.configdoc import REGENERATE, main, render_config_reference

DOC = Path(__file__).resolve().parent.parent / "docs" / "config.md"


@pytest.fixture(scope="module")
def reference() -> str:
    return render_config_reference()


def row(text: str, key: str) -> str:
    """The table row of a dotted key."""
    rows = [line for line in text.splitlines() if line.startswith(f"| `{key}` |")]
    assert len(rows) == 1, f"expected one row for {key}, got {rows}"
    return rows[0]


def leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            keys += leaf_keys(info.annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_the_committed_reference_is_current(reference):
    current = DOC.read_text(encoding="utf-8") if DOC.is_file() else ""
    assert current == reference, f"docs/config.md is stale; regenerate it with: {REGENERATE}"


def test_every_leaf_key_of_config_is_listed(reference):
    keys = leaf_keys(Config)
    assert "training.optimizer.lr" in keys and "search.space" in keys
    missing = [key for key in keys if f"| `{key}` |" not in reference]
    assert not missing


def test_every_key_is_described_once_and_the_help_names_only_real_keys(reference):
    from orchestrator.configdoc import FALLBACK_NOTES
    from orchestrator.confighelp import KEY_HELP

    keys = leaf_keys(Config)
    assert set(KEY_HELP) <= set(keys), sorted(set(KEY_HELP) - set(keys))  # no stale entry
    for key in keys:
        own = Config  # the key's own Field description, if it has one
        for part in key.split(".")[:-1]:
            own = own.model_fields[part].annotation
        has_own = own.model_fields[key.split(".")[-1]].description is not None
        assert has_own + (key in KEY_HELP) + (key in FALLBACK_NOTES) == 1, key
        assert row(reference, key).split(" | ")[-1].strip(" |"), f"{key} has no description"


def test_rows_show_choices_bounds_defaults_and_descriptions(reference):
    assert "| one of: adam, adamw, sgd, rmsprop | `adam` |" in row(
        reference, "training.optimizer.name"
    )
    assert "| float | `0.001` | `> 0` |" in row(reference, "training.optimizer.lr")
    assert "`>= 0`, `<= 180` | max rotation in degrees |" in row(reference, "data.augment.rotation")
    assert "| float or null | `5.0` | `> 0` |" in row(reference, "training.grad_clip")
    assert "mapping of str to any | `{}` |" in row(reference, "search.space")
    assert '"on"' in row(reference, "training.fuse_folds")  # YAML would read a bare on as true
    assert "\n## `training`\n" in reference and "/work/" not in reference


def test_the_search_space_note_names_every_distribution(reference):
    from orchestrator.space import DISTRIBUTIONS  # imports no Ray: config and errors only

    assert all(f"`{name}`" in row(reference, "search.space") for name in DISTRIBUTIONS)


def test_check_fails_in_one_line_on_a_stale_file_and_write_fixes_it(tmp_path, capsys):
    path = tmp_path / "config.md"
    path.write_text("old\n")
    assert main(["--check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is stale" in err and "--write" in err
    assert main(["--write", str(path)]) == 0
    assert main(["--check", str(path)]) == 0


class Grid(BaseModel):
    kind: Literal["grid"] = "grid"
    points: list[int] = Field([1, 2], min_length=1)


class Random(BaseModel):
    kind: Literal["random"] = "random"
    samples: int = Field(10, ge=1)
    """how many points to draw"""


class Tiny(BaseModel):
    strategy: Grid | Random = Field(Grid(), discriminator="kind")


def test_a_discriminated_union_lists_its_tag_and_each_variants_keys():
    text = render_config_reference(Tiny)
    assert "| one of: grid, random | `grid` |" in row(text, "strategy.kind")
    assert "at least 1 item" in row(text, "strategy.points")
    assert "Only when `strategy.kind: random`. how many points" in row(text, "strategy.samples")


def test_it_loads_neither_torch_nor_ray_nor_mlflow():
    probe = (
        "import sys, orchestrator.configdoc; "
        "print(sorted(m for m in ('torch', 'ray', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]
