"""The command line's JSON: strict (NaN and infinities as null), numpy values as plain ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def dumps(payload: Any) -> str:
    """Indented strict JSON of ``payload``."""
    return json.dumps(_finite(payload), indent=2, default=_json_default, allow_nan=False)


def write_json(path: str, payload: dict[str, Any]) -> Path:
    """``payload`` as JSON in ``path`` (folders made); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dumps(payload))
    return out


def _finite(value: Any) -> Any:
    """NaN and infinities become null, so that the file is strict JSON."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return _finite(value.item())
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    return str(value)
