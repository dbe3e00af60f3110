"""The champion alias when two searches register into one model at once: reading the alias and
moving it is not atomic, so a search that read the champion before the other moved it must not
leave its worse version crowned."""

from __future__ import annotations

import contextlib

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from orchestrator.tracking.registry import CHAMPION, _maybe_crown
from tests.test_tracking_fixtures import store_template, tracking_uri  # noqa: F401  (fixtures)

KEY = "test_accuracy"


class StaleChampion(MlflowClient):
    """A client whose first read of the alias answers version ``stale`` (None: no champion yet):
    what a search read just before another search moved the alias."""

    def __init__(self, uri: str, stale: str | None) -> None:
        super().__init__(uri)
        self.stale: list[str | None] = [stale]

    def get_model_version_by_alias(self, name, alias):
        if self.stale:
            version = self.stale.pop()
            if version is None:
                raise MlflowException(f"no alias {alias!r}")
            return super().get_model_version(name, version)
        return super().get_model_version_by_alias(name, alias)


def register(client: MlflowClient, name: str, score: float, key: str = KEY) -> str:
    """A new version of ``name`` tagged with its test score, as ``log_refit`` tags it."""
    with contextlib.suppress(MlflowException):  # the first version creates the model
        client.create_registered_model(name)
    version = client.create_model_version(name, "mlflow-artifacts:/none", tags={key: str(score)})
    return str(version.version)


def champion(client: MlflowClient, name: str) -> str:
    return str(client.get_model_version_by_alias(name, CHAMPION).version)


@pytest.mark.parametrize("name", ["shared", "o'brien"], ids=["plain", "quote"])
def test_a_stale_read_does_not_crown_the_worse_version(tracking_uri, name):  # noqa: F811
    client = MlflowClient(tracking_uri)
    assert _maybe_crown(client, name, register(client, name, 0.9), KEY, 0.9, "max")
    # the second search read "no champion" before the first crowned version 1
    late = StaleChampion(tracking_uri, stale=None)
    assert not _maybe_crown(late, name, register(client, name, 0.8), KEY, 0.8, "max")
    assert champion(client, name) == "1"


@pytest.mark.parametrize("order", [(2, 3), (3, 2)], ids=["better-first", "worse-first"])
def test_the_better_of_two_concurrent_versions_wins(tracking_uri, order):  # noqa: F811
    client = MlflowClient(tracking_uri)
    _maybe_crown(client, "m", register(client, "m", 0.7), KEY, 0.7, "max")
    scores = {"2": 0.95, "3": 0.9}
    for score in scores.values():
        register(client, "m", score)
    # both searches read version 1 as champion before either moved the alias
    crowned = {
        str(v): _maybe_crown(
            StaleChampion(tracking_uri, "1"), "m", str(v), KEY, scores[str(v)], "max"
        )
        for v in order
    }
    assert crowned == {"2": True, "3": False}
    assert champion(client, "m") == "2"


def test_a_version_settled_as_champion_by_the_other_search_says_so(tracking_uri):  # noqa: F811
    client = MlflowClient(tracking_uri)
    first, second = register(client, "m", 0.8), register(client, "m", 0.9)
    # the first search settles the alias on the better version the second just registered
    assert not _maybe_crown(client, "m", first, KEY, 0.8, "max")
    assert _maybe_crown(client, "m", second, KEY, 0.9, "max")
    assert champion(client, "m") == "2"


def test_a_worse_version_leaves_the_champion_and_a_tie_keeps_the_first(tracking_uri):  # noqa: F811
    client = MlflowClient(tracking_uri)
    assert _maybe_crown(client, "m", register(client, "m", 0.9), KEY, 0.9, "max")
    assert not _maybe_crown(client, "m", register(client, "m", 0.8), KEY, 0.8, "max")
    tie = register(client, "m", 0.9)
    assert not _maybe_crown(StaleChampion(tracking_uri, stale=None), "m", tie, KEY, 0.9, "max")
    assert champion(client, "m") == "1"


def test_lower_is_better_for_a_loss(tracking_uri):  # noqa: F811
    client = MlflowClient(tracking_uri)
    loss = "test_log_loss"
    assert _maybe_crown(client, "m", register(client, "m", 0.5, loss), loss, 0.5, "min")
    second = register(client, "m", 0.3, loss)
    assert _maybe_crown(StaleChampion(tracking_uri, stale=None), "m", second, loss, 0.3, "min")
    third = register(client, "m", 0.4, loss)
    assert not _maybe_crown(StaleChampion(tracking_uri, stale="1"), "m", third, loss, 0.4, "min")
    assert champion(client, "m") == "2"
