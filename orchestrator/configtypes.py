"""How a pydantic field reads in the configuration reference (``orchestrator.configdoc``): its
type in words, its choices, its bounds and its default as YAML. Standard library and pydantic
only."""

from __future__ import annotations

import enum
import re
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

_YAML_SPECIAL = re.compile(r"^(y|n|yes|no|on|off|true|false|null|~)$", re.IGNORECASE)
_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def yaml_scalar(value: Any) -> str:
    """``value`` as a user writes it in YAML: ``null``, ``true``, ``[256, 128]``, ``"on"``."""
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return f'"{value}"' if _needs_quotes(value) else value
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{yaml_scalar(k)}: {yaml_scalar(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return "[" + ", ".join(yaml_scalar(v) for v in items) + "]"
    return str(value)


def _needs_quotes(text: str) -> bool:
    if not text or text != text.strip() or _YAML_SPECIAL.match(text):
        return True
    if text[0] in "[]{}&*!|>'\"%@`#,?-:" or ": " in text or " #" in text:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def union_args(annotation: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(annotation)
    return None


def strip_annotated(annotation: Any) -> tuple[Any, list[Any]]:
    if typing.get_origin(annotation) is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        return base, metadata
    return annotation, []


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def choice_values(annotation: Any) -> list[Any] | None:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [member.value for member in annotation]
    return None


def type_name(annotation: Any) -> str:
    """A readable type: ``int``, ``list[int]``, ``float or null``, ``one of: adam, sgd``."""
    annotation, _ = strip_annotated(annotation)
    if annotation is Any:
        return "any"
    if annotation is type(None) or annotation is None:
        return "null"
    members = union_args(annotation)
    if members is not None:
        nullable = type(None) in members
        rest = [m for m in members if m is not type(None)]
        choices = [choice_values(m) for m in rest]
        if all(c is not None for c in choices):  # Literals (and null) merge into one list
            flat = [v for c in choices for v in c] + ([None] if nullable else [])
            return "one of: " + ", ".join(yaml_scalar(v) for v in flat)
        names = [type_name(m) for m in rest] + (["null"] if nullable else [])
        return " or ".join(names)
    choices = choice_values(annotation)
    if choices is not None:
        return "one of: " + ", ".join(yaml_scalar(v) for v in choices)
    if is_model(annotation):
        return "section"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (dict, typing.Mapping) or annotation is dict:
        key, value = (type_name(a) for a in args) if args else ("str", "any")
        return f"mapping of {key} to {value}"
    if origin in (list, set, frozenset) or annotation in (list, set, frozenset):
        name = (origin or annotation).__name__
        return f"{name}[{type_name(args[0]) if args else 'any'}]"
    if origin is tuple:
        if Ellipsis in args:
            return f"list[{type_name(args[0])}]"
        return "[" + ", ".join(type_name(a) for a in args) + "]"
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def constraints(metadata: list[Any]) -> list[str]:
    """Bounds and lengths from Field metadata: ``>= 0``, ``< 1``, ``at least 1 item``."""
    out = []
    for item in metadata:  # annotated_types' Ge, Interval, MinLen, ... and pydantic's own
        if isinstance(item, FieldInfo):  # ``Annotated[int, Field(ge=1)]`` inside a list
            out += constraints(item.metadata)
        for attr, symbol in _BOUNDS:
            if getattr(item, attr, None) is not None:
                out.append(f"`{symbol} {yaml_scalar(getattr(item, attr))}`")
        if getattr(item, "multiple_of", None) is not None:
            out.append(f"multiple of `{yaml_scalar(item.multiple_of)}`")
        for attr, word in (("min_length", "at least"), ("max_length", "at most")):
            size = getattr(item, attr, None)
            if size is not None:
                out.append(f"{word} {size} item{'s' * (size != 1)}")
        if isinstance(getattr(item, "pattern", None), str):
            out.append(f"matches `{item.pattern}`")
    return out


def item_constraints(annotation: Any) -> list[str]:
    """Bounds on the items of a list (``list[Annotated[int, Field(ge=1)]]``)."""
    annotation, _ = strip_annotated(annotation)
    args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
    if typing.get_origin(annotation) in (list, set, frozenset, tuple) and args:
        inner = constraints(strip_annotated(args[0])[1])
        return [f"each item {c}" for c in inner]
    return []


def default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None and getattr(
        info, "default_factory_takes_validated_data", False
    ):
        return "computed"
    return f"`{yaml_scalar(info.get_default(call_default_factory=True))}`"
