"""The configuration reference (``docs/config.md``), generated from the pydantic ``Config``.

Every leaf key is listed under its dotted name, the one users write in YAML and ``--set``
(``training.optimizer.lr``), with its type, default, bounds and description. Regenerate with::

    python -m orchestrator.configdoc --write docs/config.md

and check that the committed file is current with ``--check docs/config.md``. This module imports
only ``orchestrator.config``, the standard library and pydantic, so it never loads torch, Ray or
MLflow.
"""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from orchestrator.config import Config
from orchestrator.confighelp import KEY_HELP
from orchestrator.configtypes import (
    choice_values,
    constraints,
    default_text,
    is_model,
    item_constraints,
    type_name,
    union_args,
    yaml_scalar,
)

REGENERATE = "python -m orchestrator.configdoc --write docs/config.md"
TOP_LEVEL = "top level"

# Said of a key whose own Field has no description; better moved into config.py as one.
FALLBACK_NOTES = {
    "search.space": (
        "mapping of dotted config keys (as in `--set`) to one distribution each, e.g. "
        "`training.optimizer.lr: {loguniform: [1.0e-4, 1.0e-2]}`; distributions: `choice`, "
        "`grid`, `uniform`, `loguniform`, `randint` (high exclusive), `qrandint`, `quniform`; "
        "empty: nothing is searched"
    ),
}

# PyYAML (YAML 1.1) reads these plain scalars as booleans or null, not as strings.


@dataclass
class Row:
    """One leaf key of the reference table."""

    key: str
    type: str
    default: str
    constraints: str
    description: str
    conditions: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- descriptions
@functools.cache
def attribute_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """Docstrings written under fields (``lr: float = 1e-3`` then ``\"\"\"learning rate\"\"\"``)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(model)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for stmt, after in zip(body, body[1:], strict=False):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[stmt.target.id] = inspect.cleandoc(after.value.value)
    return docs


def own_docstring(model: type[BaseModel]) -> str:
    doc = model.__dict__.get("__doc__")
    return " ".join(inspect.cleandoc(doc).split()) if doc else ""


def describe(model: type[BaseModel], name: str, info: FieldInfo, dotted: str) -> str:
    text = info.description or attribute_docstrings(model).get(name) or KEY_HELP.get(dotted)
    return " ".join((text or FALLBACK_NOTES.get(dotted, "")).split())


# --------------------------------------------------------------------------- walking the model
def walk(model: type[BaseModel], prefix: str = "") -> Iterator[Row]:
    """Every leaf key under ``model``, depth first in the order the fields are declared."""
    for name, info in model.model_fields.items():
        dotted = f"{prefix}{info.alias or name}"
        yield from _field_rows(model, name, info, dotted)


def _field_rows(model: type[BaseModel], name: str, info: FieldInfo, dotted: str) -> Iterator[Row]:
    annotation = info.annotation
    members = union_args(annotation) or (annotation,)
    sections = [m for m in members if is_model(m)]
    description = describe(model, name, info, dotted)
    if not sections:
        yield _leaf(model, name, info, dotted, description)
        return
    if len(sections) < len(members):  # e.g. ``Sub | None``: the key itself may be set to null
        yield _leaf(model, name, info, dotted, description)
    discriminator = info.discriminator if isinstance(info.discriminator, str) else None
    if discriminator and len(sections) > 1:  # one row for the tag that picks the variant
        tags = [_tag_values(s, discriminator) for s in sections]
        default = info.get_default(call_default_factory=True)
        tag = getattr(default, discriminator, None)
        yield Row(
            f"{dotted}.{discriminator}",
            "one of: " + ", ".join(tags),
            "required" if tag is None else f"`{yaml_scalar(tag)}`",
            "",
            f"selects the variant of `{dotted}`; the keys below apply to the one named",
        )
    for section in sections:
        rows = (r for r in walk(section, dotted + ".") if r.key != f"{dotted}.{discriminator}")
        if len(sections) == 1:
            yield from rows
            continue
        tag = _tag_values(section, discriminator)
        condition = (
            f"`{dotted}.{discriminator}: {tag}`" if tag else f"`{dotted}` is a {section.__name__}"
        )
        for row in rows:
            row.conditions.append(condition)
            yield row


def _tag_values(section: type[BaseModel], discriminator: str | None) -> str:
    info = section.model_fields.get(discriminator or "")
    choices = choice_values(info.annotation) if info else None
    return ", ".join(yaml_scalar(c) for c in choices) if choices else ""


def _leaf(model: type[BaseModel], name: str, info: FieldInfo, dotted: str, text: str) -> Row:
    bounds = constraints(info.metadata) + item_constraints(info.annotation)
    return Row(dotted, type_name(info.annotation), default_text(info), ", ".join(bounds), text)


def merge_variants(rows: list[Row]) -> list[Row]:
    """One row per key: keys shared by the variants of a union list every condition once."""
    merged: dict[tuple[str, str, str, str, str], Row] = {}
    for row in rows:
        ident = (row.key, row.type, row.default, row.constraints, row.description)
        if ident in merged:
            merged[ident].conditions.extend(
                c for c in row.conditions if c not in merged[ident].conditions
            )
        else:
            merged[ident] = row
    return list(merged.values())


def nested_sections(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, type[BaseModel]]]:
    for name, info in model.model_fields.items():
        for member in union_args(info.annotation) or (info.annotation,):
            if is_model(member):
                dotted = f"{prefix}{info.alias or name}"
                yield dotted, member
                yield from nested_sections(member, dotted + ".")


# --------------------------------------------------------------------------- Markdown
def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(rows: list[Row]) -> list[str]:
    lines = ["| Key | Type | Default | Constraints | Description |", "|---|---|---|---|---|"]
    for row in merge_variants(rows):
        text = row.description
        if row.conditions:
            text = f"Only when {' or '.join(row.conditions)}. {text}".strip()
        cells = [f"`{row.key}`", row.type, row.default, row.constraints, text]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def render_config_reference(model: type[BaseModel] = Config) -> str:
    """The Markdown reference of every key of ``model`` (``Config``), one table per section."""
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated from orchestrator/config.py by `{REGENERATE}`; do not edit. -->",
        "",
        "Every key below can be written in a YAML file passed with `--config` (nested under",
        "its section) or set on the command line with `--set key=value`, e.g.",
        "`--set training.optimizer.lr=0.01`. The same dotted key is the Ray Tune column, the",
        "MLflow parameter name and a key of `search.space`. Values are read as YAML, so strings",
        'that YAML reads otherwise, such as `"on"` and `"off"`, need quotes.',
    ]
    groups: dict[str, list[Row]] = {}
    docs: dict[str, tuple[str, list[type[BaseModel]]]] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        members = union_args(info.annotation) or (info.annotation,)
        group = key if any(is_model(m) for m in members) else TOP_LEVEL
        groups.setdefault(group, []).extend(_field_rows(model, name, info, key))
        sections = [m for m in members if is_model(m)]
        docs.setdefault(group, (describe(model, name, info, key), sections))
    for group, rows in groups.items():
        lines += ["", f"## {group if group == TOP_LEVEL else f'`{group}`'}", ""]
        text, sections = docs[group]
        notes = [text] if group != TOP_LEVEL and text else []
        for section in sections:
            label = f"`{section.__name__}` variant: " if len(sections) > 1 else ""
            notes.append(label + own_docstring(section) if own_docstring(section) else "")
            for dotted, nested in nested_sections(section, group + "."):
                if own_docstring(nested):
                    notes.append(f"`{dotted}`: {own_docstring(nested)}")
        notes = list(dict.fromkeys(n for n in notes if n))
        if notes:
            lines += [*notes, ""]
        lines += _table(rows)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.configdoc", description="Print the configuration reference."
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", metavar="PATH", help="write the reference to PATH")
    action.add_argument("--check", metavar="PATH", help="exit 1 if PATH is not current")
    args = parser.parse_args(argv)
    text = render_config_reference()
    if args.write:
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write).write_text(text, encoding="utf-8")
    elif args.check:
        path = Path(args.check)
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != text:
            state = "is stale" if current is not None else "is missing"
            command = REGENERATE.replace("docs/config.md", str(args.check))
            print(f"{args.check} {state}; regenerate it with: {command}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
