"""The project's exception tree. ``cli.py`` turns every ``AutoMLError`` into one line and exit 2.

This module imports nothing from the project so that ``data/`` and ``models/`` can raise these
errors without depending on the rest of ``orchestrator/``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AutoMLError(Exception):
    """Base class of every error meant for the user (bad input, bad config, bad data)."""


class ConfigError(AutoMLError):
    """The configuration (YAML, --set overrides or flags) is invalid."""


class DataError(AutoMLError):
    """The data cannot be loaded or is unusable for the requested task."""


class ModelError(AutoMLError):
    """A model cannot be built or loaded with the given specification."""


class TrainingError(AutoMLError):
    """Training failed for a reason the user can act on (e.g. a diverging loss)."""


class TrackingError(AutoMLError):
    """The MLflow tracking store cannot be used (a bad tracking URI, a store that fails)."""


class ClusterError(AutoMLError):
    """A Ray cluster cannot be joined: nothing answers at its address, or its token
    authentication turned this process away."""


class AutoMLWarning(UserWarning):
    """Warnings about the user's data or config (e.g. rows dropped for a missing target)."""


def did_you_mean(value: str, options: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' when ``value`` is close to one of ``options``, else ''."""
    matches = difflib.get_close_matches(str(value), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
