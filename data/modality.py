"""How loaded arrays are read: images, sequences or flattened tables (the 3-D ambiguity)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from data.dataset import MODALITIES, Dataset
from data.preprocessing import sequence_lengths
from orchestrator.errors import ConfigError, DataError

SEQUENCE_FAMILIES = ("cnn1d", "rnn", "lstm", "gru", "transformer")
IMAGE_FAMILIES = ("cnn",)
TABLE_FAMILIES = ("fnn",)
MIN_IMAGE_SIDE = 8


@dataclass
class RawData:
    """What a reader found, before the modality is settled."""

    X: Any  # DataFrame, or an array of 2 to 4 dimensions
    y: np.ndarray
    source: str
    lengths: np.ndarray | None = None
    groups: np.ndarray | None = None
    class_names: list[str] | None = None
    declared: str | None = None  # a modality stated by the file itself (NPZ entry, UCR format)
    notes: list[str] = field(default_factory=list)


def check_modality(modality: str) -> None:
    if modality not in ("auto", *MODALITIES):
        raise ConfigError(
            f"data.modality must be one of auto, {', '.join(MODALITIES)}, got {modality!r}"
        )


def _array_reading(raw: RawData, modality: str, family: str) -> tuple[str, str]:
    """(``image`` or ``sequence``, why) for an array of 3 or 4 dimensions."""
    X = raw.X
    shape = "(N, " + ", ".join(map(str, X.shape[1:])) + ")"
    if modality in ("image", "sequence"):
        return modality, f"data.modality={modality}"
    if raw.declared in ("image", "sequence"):
        return raw.declared, f"the file declares modality '{raw.declared}'"
    if raw.lengths is not None:
        return "sequence", "sequence lengths are given"
    if family in SEQUENCE_FAMILIES:
        return "sequence", f"model family '{family}' reads sequences"
    if family in IMAGE_FAMILIES:
        return "image", f"model family '{family}' reads images"
    if X.ndim == 4:
        return "image", f"a 4-D array {shape} holds images with channels"
    h, w = X.shape[1], X.shape[2]
    has_nan = bool(np.isnan(X).any())
    if h >= MIN_IMAGE_SIDE and w >= MIN_IMAGE_SIDE and not has_nan:
        return "image", (
            f"H={h} and W={w} are both at least {MIN_IMAGE_SIDE} and there is no NaN padding "
            "(set data.modality=sequence to read rows as time steps)"
        )
    why = "it has NaN padding" if has_nan else f"a side is below {MIN_IMAGE_SIDE}"
    return "sequence", f"{why} (set data.modality=image to read it as images)"


def _check_lengths(lengths: np.ndarray, n: int, t: int, source: str = "") -> np.ndarray:
    lengths = np.asarray(lengths)
    where = f" (in {source})" if source else ""
    if lengths.shape != (n,):
        raise DataError(
            f"lengths has shape {lengths.shape} but X has {n} samples; need ({n},){where}"
        )
    rule = f"lengths must be whole numbers from 1 to T={t}, the time steps of X"
    if not np.issubdtype(lengths.dtype, np.number) or lengths.dtype.kind == "c":
        raise DataError(f"{rule}; got dtype {lengths.dtype}{where}")
    with np.errstate(invalid="ignore"):
        bad = ~((lengths >= 1) & (lengths <= t) & (lengths == np.round(lengths)))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{rule}; got {lengths[i]} for sample {i}{where}")
    return lengths.astype(np.int64)


def _flatten(X: np.ndarray, prefix: str) -> pd.DataFrame:
    flat = X.reshape(len(X), -1)
    return pd.DataFrame(flat, columns=[f"{prefix}{i}" for i in range(flat.shape[1])])


def resolve_modality(raw: RawData, modality: str = "auto", family: str = "auto") -> Dataset:
    """Settle how ``raw`` is read and return the Dataset; the choice is written to ``notes``."""
    check_modality(modality)
    notes = list(raw.notes)
    X = raw.X
    if isinstance(X, np.ndarray) and X.ndim == 2:
        X = _flatten(X, "x")
        notes.append(f"2-D array {raw.X.shape} read as a table with columns x0..x{X.shape[1] - 1}")
    if isinstance(X, pd.DataFrame):
        wanted = modality if modality != "auto" else raw.declared
        if wanted in ("image", "sequence"):
            raise DataError(
                f"{raw.source} is a table and cannot be read as modality '{wanted}'; "
                "use data.modality=table or auto"
            )
        return Dataset(X, raw.y, "table", raw.source, None, raw.groups, raw.class_names, notes)

    X = np.asarray(X, dtype=np.float32)
    shape = "(N, " + ", ".join(map(str, X.shape[1:])) + ")"
    reading, why = _array_reading(replace(raw, X=X), modality, family)
    lengths = None
    if reading == "image":
        if raw.lengths is not None and len(np.unique(raw.lengths)) > 1:
            raise DataError(
                "variable-length sequences (different lengths) cannot be read as images"
            )
        axes = "(N, H, W)" if X.ndim == 3 else "(N, H, W, C)"
        notes.append(f"{X.ndim}-D array {shape} read as images {axes} because {why}")
        if X.ndim == 3:
            X = X[..., None]
    else:
        if X.ndim == 4:
            n, h, w, c = X.shape
            X = X.reshape(n, h, w * c)
            notes.append(f"4-D array {shape} read as sequences (N, T=H, F=W*C) because {why}")
        else:
            notes.append(f"3-D array {shape} read as sequences (N, T, F) because {why}")
        if raw.lengths is not None:
            lengths = _check_lengths(raw.lengths, len(X), X.shape[1], raw.source)
            X = X.copy()
            X[np.arange(X.shape[1])[None, :] >= lengths[:, None]] = np.nan
        else:
            lengths = sequence_lengths(X)

    as_table = modality == "table" or (modality == "auto" and family in TABLE_FAMILIES)
    if modality == "auto" and raw.declared == "table":
        as_table = True
    if as_table:
        prefix = "px" if reading == "image" else "x"
        X = _flatten(X, prefix)
        cause = f"family '{family}'" if modality == "auto" else f"data.modality={modality}"
        if modality == "auto" and raw.declared == "table":
            cause = "the file declares modality 'table'"
        notes.append(f"flattened to a table of {X.shape[1]} columns {prefix}0.. for {cause}")
        return Dataset(X, raw.y, "table", raw.source, None, raw.groups, raw.class_names, notes)
    return Dataset(X, raw.y, reading, raw.source, lengths, raw.groups, raw.class_names, notes)
