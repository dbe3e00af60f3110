"""The ``Dataset`` container every stage of ``data/`` passes along."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

MODALITIES = ("table", "image", "sequence")


@dataclass
class Dataset:
    """Features, raw target and how they were read.

    ``X`` is a DataFrame for tables (target removed), a float32 array ``(N, H, W, C)`` for images
    and a float32 array ``(N, T, F)`` for sequences, NaN after each sequence's length.
    """

    X: Any
    y: np.ndarray
    modality: str
    source: str = ""
    lengths: np.ndarray | None = None
    groups: np.ndarray | None = None
    class_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    # a table's columns with the dtype its reader gave them, before cleaning cast any (int64
    # stays int64): what a model's users will send, so what its signature describes
    column_types: dict[str, str] | None = None

    @property
    def n_samples(self) -> int:
        return int(len(self.y))

    @property
    def n_features(self) -> int:
        """Columns of a table, pixels times channels of an image, features per sequence step."""
        if self.modality == "table":
            return int(self.X.shape[1])
        if self.modality == "image":
            return int(np.prod(self.X.shape[1:]))
        return int(self.X.shape[2])

    def subset(self, idx: np.ndarray) -> Dataset:
        """The rows at positions ``idx`` (a new Dataset; a table's index is reset)."""
        idx = np.asarray(idx, dtype=np.int64)
        if isinstance(self.X, pd.DataFrame):
            X = self.X.iloc[idx].reset_index(drop=True)
        else:
            X = self.X[idx]
        return replace(
            self,
            X=X,
            y=self.y[idx],
            lengths=None if self.lengths is None else self.lengths[idx],
            groups=None if self.groups is None else self.groups[idx],
            notes=list(self.notes),
        )
