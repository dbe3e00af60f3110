"""The command line's verbs after a search: reading it back (runs, best, report, ui), the
store's catch-up (sync) and deployment (predict, serve, export), and the data sets. Registered
on the ``automl`` group by ``orchestrator.cli``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from orchestrator import jsonout
from orchestrator.clicommon import handle_errors, model_uri_option, tracking_uri_option, write_json


@click.command()
@click.option("--experiment", help="Only this experiment (search name).")
@tracking_uri_option
@handle_errors
def runs(experiment, tracking_uri) -> None:
    """Table of searches and their trials, read back from MLflow."""
    from orchestrator.report import print_runs
    from orchestrator.tracking import list_searches

    print_runs(list_searches(tracking_uri, experiment))


@click.command()
@click.option("--experiment", required=True, help="Experiment (search name).")
@tracking_uri_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write JSON.")
@handle_errors
def best(experiment, tracking_uri, json_path) -> None:
    """The best trial of a search: its metrics and the URI of its refit model."""
    from orchestrator.tracking import best_run

    info = best_run(tracking_uri, experiment)
    click.echo(jsonout.dumps(info))
    if json_path:
        write_json(json_path, info)


@click.command()
@tracking_uri_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--experiment", help="Print the URL of this experiment's training runs.")
@handle_errors
def ui(tracking_uri, host, port, experiment) -> None:
    """Start the MLflow UI on the project's tracking store."""
    import subprocess

    from orchestrator.tracking import resolve_tracking_uri, runs_view_url

    uri = resolve_tracking_uri(tracking_uri)
    click.echo(f"MLflow UI for {uri} on http://{host}:{port}")
    from orchestrator.tracking import experiment_ids

    for found, name in sorted(experiment_ids(uri, experiment).items(), key=lambda kv: kv[1]):
        click.echo(f"{name}: {runs_view_url(uri, found, f'http://{host}:{port}')}")
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
    ]
    sys.exit(subprocess.call(cmd))


@click.command()
@model_uri_option
@click.option(
    "--data",
    "data_path",
    required=True,
    help="Raw input in the training format: CSV/Parquet, NPZ or an image folder.",
)
@click.option("--output", type=click.Path(dir_okay=False), help="Write predictions as CSV.")
@tracking_uri_option
@handle_errors
def predict(model_uri, data_path, output, tracking_uri) -> None:
    """Batch prediction: labels and class probabilities, or values for regression."""
    from orchestrator.serving import predict_file

    frame = predict_file(model_uri, data_path, output, tracking_uri)
    if output:
        click.echo(f"wrote {len(frame)} predictions to {output}")
    else:
        click.echo(frame.to_csv(index=False), nl=False)


@click.command()
@model_uri_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind (loopback unless told otherwise).",
)
@click.option("--port", default=5001, show_default=True, type=int)
@click.option(
    "--max-body-mb",
    type=float,
    default=10.0,
    show_default=True,
    help="Largest request body in MiB; a larger one is answered 413.",
)
@tracking_uri_option
@handle_errors
def serve(model_uri, host, port, max_body_mb, tracking_uri) -> None:
    """Serve a model over REST (MLflow scoring server: /invocations, /ping, /version)."""
    from orchestrator.serving import serve as serve_model

    click.echo(f"serving {model_uri} on http://{host}:{port}/invocations")
    serve_model(model_uri, host, port, tracking_uri, max_body_mb)


@click.command()
@model_uri_option
@click.option("--format", "fmt", type=click.Choice(["torchscript", "onnx"]), required=True)
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Path of the exported network; its preprocessing goes beside it as JSON.",
)
@tracking_uri_option
@handle_errors
def export(model_uri, fmt, output, tracking_uri) -> None:
    """Export the network as a standalone TorchScript or ONNX file plus preprocessing JSON."""
    from orchestrator.serving import export_model

    info = export_model(model_uri, fmt, output, tracking_uri)
    click.echo(jsonout.dumps(info))


@click.command()
def datasets() -> None:
    """List the built-in data sets (those that ship with scikit-learn)."""
    from data import list_builtin

    for name, description in list_builtin():
        click.echo(f"builtin:{name:<16} {description}")


@click.command()
@click.option("--experiment", required=True, help="Experiment (search name).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default="report.html",
    show_default=True,
    help="The HTML page to write (self-contained: open it anywhere, offline).",
)
@click.option("--run", "run_id", help="A search's parent run id (default: the latest search).")
@tracking_uri_option
@handle_errors
def report(experiment, output, run_id, tracking_uri) -> None:
    """One HTML page on a search: trials, best so far, hyperparameters, importance, Pareto
    front, the best trial's curves and confusion matrix, the test metrics."""
    from orchestrator.searchreport import write_report

    click.echo(f"wrote {write_report(tracking_uri, experiment, Path(output), run_id)}")


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@tracking_uri_option
@handle_errors
def sync(file, tracking_uri) -> None:
    """Write the records a search could not send (its store was away) into the store."""
    from orchestrator.tracking.sync import replay

    click.echo(jsonout.dumps(replay(file, tracking_uri)))


COMMANDS = [runs, best, report, ui, sync, predict, serve, export, datasets]
