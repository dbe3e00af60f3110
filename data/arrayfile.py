"""Reading an NPZ archive of arrays, or one line saying why not (no pickled objects)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from data.corrections import FLOAT32_MAX, RANGE_RULE
from orchestrator.errors import DataError

NPZ_RULE = "an .npz file must be numpy.savez output of numeric or string arrays (no objects)"


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of the archive at ``path``, by name."""
    try:  # the file opened here: np.load leaves its own open when the archive is bad
        with path.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"cannot read {path} ({text}); {NPZ_RULE}") from None


def check_array_values(X: np.ndarray, what: str = "X", source: object = "") -> None:
    """DataError when ``X`` is not numbers, or holds an infinite or too large one (NaN marks a
    missing value or a sequence's padding, and is allowed)."""
    where = f" (in {source})" if source else ""
    if not np.issubdtype(X.dtype, np.number) and X.dtype != bool:
        raise DataError(f"{what} must be numeric, got dtype {X.dtype}{where}")
    if X.dtype.kind in "fc":
        with np.errstate(invalid="ignore"):
            bad = np.abs(X) > FLOAT32_MAX
        if bad.any():
            shown = ", ".join(sorted({repr(float(v)) for v in X[bad].real})[:3])
            raise DataError(
                f"{what} has {int(bad.sum())} infinite or too large value(s) ({shown}){where}; "
                f"{RANGE_RULE}"
            )
