"""An earlier search's finished trials, read from MLflow for ``--warm-start``: no Tune folder
is needed, only the tracking store. Trials count when their search ran on the same data (the
``automl.dataset_digest`` tag of its parent run) and they finished with every objective."""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from orchestrator.errors import TrackingError
from orchestrator.tracking.readback import experiment_ids, search_all, trial_score
from orchestrator.tracking.stores import TAG_ROLE, TAG_STATUS, resolve_tracking_uri

TAG_DIGEST = "automl.dataset_digest"


def finished_trials(
    tracking_uri: str | None, experiment: str, digest: str, metrics: list[str]
) -> list[tuple[dict[str, str], list[float]]]:
    """``(params, objective values)`` of every completed trial of ``experiment``'s searches on
    the data whose digest is ``digest``; one line if there is none."""
    client = MlflowClient(resolve_tracking_uri(tracking_uri))
    ids = list(experiment_ids(tracking_uri, experiment))
    parents = search_all(client, ids, f"tags.`{TAG_ROLE}` = 'search'")
    same = [p.info.run_id for p in parents if p.data.tags.get(TAG_DIGEST) == digest]
    if not same:
        seen = sorted({p.data.tags.get(TAG_DIGEST) or "none" for p in parents})
        raise TrackingError(
            f"--warm-start: experiment '{experiment}' has no search on this data (dataset "
            f"digest {digest}); its searches' digests: {', '.join(seen) or 'no searches'}"
        )
    out = []
    for run in search_all(client, ids, f"tags.`{TAG_ROLE}` = 'trial'"):
        if run.data.tags.get(MLFLOW_PARENT_RUN_ID) not in same:
            continue
        if run.data.tags.get(TAG_STATUS) != "COMPLETED":
            continue
        values = [trial_score(run, m) for m in metrics]
        if all(v is not None for v in values):
            out.append((dict(run.data.params), values))
    return out
