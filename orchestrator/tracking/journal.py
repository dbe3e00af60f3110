"""The writer's records that are not in the tracking store yet, in a local file.

The search's writer (``tracking.writer``) keeps at most ``MAX_QUEUED`` records in memory; past
that, while the store is slow or away, new records go to this file in the search's folder, and
the writer reads them back once it has caught up. If the store stays away past
``tracking.retry_s`` everything not written goes here, and stays: ``automl sync FILE`` replays
it into a store (:func:`replay`), the original one by default. Every record can be written
twice without harm (runs are found again by their trial id, metrics carry the time they were
recorded, so a repeated row is the same row), so a replay after a partial write is safe.

A record is ``(kind, trial_id, data, at)`` (``at``: when the driver got it, seconds since the
epoch); the file starts with a header: where the records go and the search's config.
"""

from __future__ import annotations

import pickle
import threading
from pathlib import Path
from typing import Any

from orchestrator.errors import TrackingError

HEADER = "header"


class Journal:
    """An append-only file of pickled records; thread-safe."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.header = header
        self.lock = threading.Lock()
        self.count = 0  # records in the file now
        self.spilling = False  # new records come here, in order, until take()

    def append(self, record: tuple) -> None:
        with self.lock:
            self._append(record)

    def spill(self, record: tuple, queued: int, limit: int) -> bool:
        """Keep ``record`` here when ``queued`` records already wait in memory (``limit`` or
        more) or earlier ones came here and were not taken yet; whether it was kept."""
        with self.lock:
            self.spilling = self.spilling or queued >= limit
            if self.spilling:
                self._append(record)
            return self.spilling

    def _append(self, record: tuple) -> None:
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as fh:
            if new:
                pickle.dump((HEADER, "", self.header, 0.0), fh)
            pickle.dump(record, fh)
        self.count += 1

    def take(self) -> list[tuple]:
        """Every record in the file, which is then removed; new records go to memory again."""
        with self.lock:
            self.spilling = False
            records = read_records(self.path) if self.path.exists() else []
            self.path.unlink(missing_ok=True)
            self.count = 0
            return records


def read_records(path: Path) -> list[tuple]:
    """The records of a journal file, its header left out."""
    return [r for r in _load(path) if r[0] != HEADER]


def read_header(path: Path) -> dict[str, Any]:
    for record in _load(path):
        if record[0] == HEADER:
            return record[2]
    raise TrackingError(f"{path} is not a file of unsent tracking records (no header)")


def _load(path: Path) -> list[tuple]:
    path = Path(path)
    if not path.is_file():
        raise TrackingError(f"no such file of unsent tracking records: {path}")
    out = []
    with path.open("rb") as fh:
        while True:
            try:
                out.append(pickle.load(fh))
            except EOFError:
                return out
            except (pickle.UnpicklingError, ValueError, AttributeError) as err:
                if out:  # a record cut short when the process died: the rest is kept
                    return out
                raise TrackingError(
                    f"{path} is not a file of unsent tracking records: {err}"
                ) from None
