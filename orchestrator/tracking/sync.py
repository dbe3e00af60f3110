"""``automl sync FILE``: the records a search could not send (its store was away past
``tracking.retry_s``) written into the store, from the journal file it left
(``tracking.journal``). Every record is safe to write twice, so a sync that stops half-way can
be run again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.config import validate_config
from orchestrator.errors import TrackingError
from orchestrator.tracking.journal import read_header, read_records
from orchestrator.tracking.keys import TAG_ERROR, TAG_STATUS
from orchestrator.tracking.resilient import StoreHealth, check_reachable
from orchestrator.tracking.stores import one_line, resolve_tracking_uri, tracking_client


def replay(path: str | Path, tracking_uri: str | None = None) -> dict[str, Any]:
    """Write a journal's records into the store they were meant for (or ``tracking_uri``, a
    copy of it: the search's runs must be there); the file is removed once all are written."""
    from orchestrator.tracking.writer import TrialRunWriter

    path = Path(path)
    header = read_header(path)
    uri, experiment_id, parent_run_id = header["ids"]
    target = resolve_tracking_uri(tracking_uri) if tracking_uri else uri
    check_reachable(target)
    client = tracking_client(target)
    try:
        client.get_run(parent_run_id)
    except Exception:
        raise TrackingError(
            f"the search's run {parent_run_id} is not in {target}; automl sync writes into the "
            f"store the search logged to ({uri}) or a copy of it"
        ) from None
    config = validate_config(header["config"], str(path))
    health = StoreHealth(target, config.tracking.retry_s)
    writer = TrialRunWriter(
        (target, experiment_id, parent_run_id),
        config,
        header["task"],
        header.get("cleaning"),
        reattach=True,
        health=health,
    )
    records = read_records(path)
    parent = [r[2] for r in records if r[0] == "parent"]
    trials = writer.replay([r for r in records if r[0] != "parent"])
    if writer.offline is not None:
        raise TrackingError(f"{writer.offline}; {path} is kept: run automl sync again")
    if parent:
        _end_parent(client, parent_run_id, parent[-1])
    path.unlink()
    return {"file": str(path), "records": len(records), "trials": trials, "store": target}


def _end_parent(client: Any, run_id: str, end: dict[str, Any]) -> None:
    tags = {TAG_STATUS: end["status"]}
    if end.get("error"):
        tags[TAG_ERROR] = one_line(end["error"], 1000)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    client.set_terminated(run_id, end["status"])
