"""A per-process cache of fitted fold preprocessing, shared by the trials a Ray worker runs.

Trials of one search see the same prepared data, the same folds and, unless the search space
touches ``data.*`` or ``split.*``, the same preprocessing. Fitting it (a ``ColumnTransformer`` per
fold) and transforming every part to tensors cost about a third of a small trial, so a reused
worker keeps the results of its last trials and hands them to the next. Entries are keyed by the
prepared data's token and everything the preprocessing depends on, and are never mutated: trainers
copy or index the tensors, they do not write into them.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from models import TensorData

# At most this many folds, and at most this many bytes of tensors, stay cached per process.
MAX_FOLDS = 12
MAX_BYTES = 1 << 30


@dataclass(frozen=True)
class FoldData:
    """One fold's fitted preprocessing and its parts as tensors (read-only once cached)."""

    preprocessor: Any
    target: Any
    fit: TensorData
    early_stop: TensorData | None
    val: TensorData | None

    @property
    def nbytes(self) -> int:
        total = 0
        for part in (self.fit, self.early_stop, self.val):
            if part is None:
                continue
            for t in (part.x, part.y, part.lengths):
                if t is not None:
                    total += t.element_size() * t.nelement()
        return total


def fold_key(token: str, fold: int, config: Any, seed: int, early_stop: bool) -> tuple:
    """Everything a fold's preprocessing depends on, besides the data behind ``token``."""
    return (
        token,
        fold,
        config.seed,
        seed,
        early_stop,
        # augmentation acts on training batches, not on a fold's preprocessing
        json.dumps(config.data.model_dump(mode="json", exclude={"augment"}), sort_keys=True),
        json.dumps(config.split.model_dump(mode="json"), sort_keys=True),
    )


class FoldCache:
    """Least-recently-used fold preprocessing, bounded by count and by tensor bytes."""

    def __init__(self, max_folds: int = MAX_FOLDS, max_bytes: int = MAX_BYTES) -> None:
        self.max_folds, self.max_bytes = max_folds, max_bytes
        self._entries: OrderedDict[tuple, FoldData] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> FoldData | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: tuple, entry: FoldData) -> None:
        if self.max_folds <= 0 or entry.nbytes > self.max_bytes:
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_folds or self.nbytes > self.max_bytes:
            self._entries.popitem(last=False)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def clear(self) -> None:
        self._entries.clear()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)


FOLD_CACHE = FoldCache()
