"""What the command line's modules share: the one-line error handler and common options."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from orchestrator import jsonout
from orchestrator.errors import AutoMLError


def handle_errors(func: Callable) -> Callable:
    """Translate the project's errors into one line and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AutoMLError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)

    return wrapper


TRACKING_URI_HELP = "MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlflow.db)."
tracking_uri_option = click.option("--tracking-uri", help=TRACKING_URI_HELP)
model_uri_option = click.option(
    "--model",
    "model_uri",
    required=True,
    help="runs:/ID/model, models:/NAME@champion, models:/NAME/VERSION or a folder.",
)


def write_json(path: str, payload: dict[str, Any]) -> None:
    click.echo(f"wrote {jsonout.write_json(path, payload)}")
