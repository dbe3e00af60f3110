"""The fitted Predictor as an MLflow pyfunc model: raw rows in, labels and probabilities out.

The model directory carries the pickled :class:`~orchestrator.predictor.Predictor` (preprocessing,
target encoder and network, on the CPU) and, as ``code_paths``, the project packages, so that
``mlflow.pyfunc.load_model(uri)`` works in a fresh process and in ``mlflow models serve``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd

from orchestrator.errors import AutoMLError, ConfigError, DataError, ModelError
from orchestrator.scoring import (  # noqa: F401  (prepare_input re-exported: serving was its home)
    DEFAULT_MAX_BODY_MB,
    MIB,
    BodySizeLimit,
    check_batch,
    prepare_input,
    raw_shape,
    read_prediction_input,
)
from orchestrator.signature import (  # noqa: F401  (re-exported: serving was their home)
    MLFLOW_TYPES,
    predictor_signature,
    raw_input_types,
    table_input_schema,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CODE_PACKAGES = ("orchestrator", "models", "data")
PREDICTOR_ARTIFACT = "predictor"
PREDICTOR_FILE = "predictor.pkl"
PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


_raw_shape = raw_shape  # the name tests and older callers use


class PredictorModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of a pickled Predictor; predict returns Predictor.predict's frame."""

    # raw frames of any schema in, a frame out: the signature comes from the input example, so
    # MLflow 3's type-hint wrapping of predict (and its warning about missing hints) is skipped
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        with open(context.artifacts[PREDICTOR_ARTIFACT], "rb") as fh:
            self.predictor = pickle.load(fh)
        self.predictor.eval()

    # no type hints here: MLflow 3 would try to derive a schema from them
    def predict(self, context, model_input, params=None):  # noqa: ANN001
        return predict_checked(self.predictor, model_input)


def predict_checked(predictor: Any, model_input: Any, extra: str = "error") -> pd.DataFrame:
    """Predict a request batch; bad input raises MlflowException(INVALID_PARAMETER_VALUE): 400.

    MLflow's schema enforcement drops columns not in the signature before this sees them, so the
    REST server of :func:`build_app` checks for extra columns earlier (see :class:`StrictModel`).
    """
    try:
        X = prepare_input(predictor, model_input)
        check_batch(predictor, X, extra=extra)
        return predictor.predict(X)
    except (AutoMLError, ValueError, KeyError, TypeError) as err:
        raise bad_request(err) from None


def bad_request(err: Exception) -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return MlflowException(f"invalid input: {message}", error_code=INVALID_PARAMETER_VALUE)


RUNTIME_PACKAGES = (
    "mlflow",
    "torch",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "pydantic",
    "pyyaml",
    "cloudpickle",
)


def pip_requirements() -> list[str]:
    """Pinned runtime packages; given explicitly because MLflow's inference costs ~10 s."""
    from importlib import metadata

    out = []
    for name in RUNTIME_PACKAGES:
        try:
            out.append(f"{name}=={metadata.version(name).split('+')[0]}")
        except metadata.PackageNotFoundError:
            continue
    return out


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """No tqdm bar for the download MLflow does to validate a logged model's serving input (one
    local file: the bar is noise in a search's output), unless the user set the variable."""
    if PROGRESS_BAR_ENV in os.environ:
        yield
        return
    os.environ[PROGRESS_BAR_ENV] = "false"
    try:
        yield
    finally:
        os.environ.pop(PROGRESS_BAR_ENV, None)


def log_predictor(predictor: Any, name: str = "model", input_example: Any = None, **kwargs: Any):
    """Log ``predictor`` as a pyfunc model in the active run; returns MLflow's ``ModelInfo``.

    Extra keyword arguments go to ``mlflow.pyfunc.log_model`` (``registered_model_name``…).
    """
    from orchestrator.tracking.stores import quiet_schema_hints

    with quiet_schema_hints(), _no_progress_bar(), tempfile.TemporaryDirectory() as tmp:
        signature = None
        if predictor.modality == "table":
            kwargs.setdefault("metadata", {"input_types": raw_input_types(predictor)})
        if input_example is not None:
            signature = predictor_signature(predictor, input_example)
            if predictor.modality != "table":
                input_example = np.asarray(
                    prepare_input(predictor, input_example), dtype=np.float32
                )
        path = Path(tmp) / PREDICTOR_FILE
        with open(path, "wb") as fh:
            pickle.dump(predictor.cpu_copy(), fh)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*type hint", category=UserWarning)
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=PredictorModel(),
                artifacts={PREDICTOR_ARTIFACT: str(path)},
                code_paths=[str(PROJECT_ROOT / pkg) for pkg in CODE_PACKAGES],
                signature=signature,
                input_example=input_example,
                pip_requirements=kwargs.pop("pip_requirements", None) or pip_requirements(),
                **kwargs,
            )


def _load_error(model_uri: str, err: Exception) -> ModelError:
    text = str(getattr(err, "message", None) or err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    return ModelError(f"cannot load model {model_uri!r}: {first}")


def _download(model_uri: str) -> Path:
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    local = Path(model_uri).expanduser()
    if "://" not in model_uri and local.is_dir():
        return local
    if "://" not in model_uri and not model_uri.startswith(("runs:", "models:")):
        raise ModelError(
            f"cannot load model {model_uri!r}: not a folder, nor a runs:/RUN_ID/model or "
            "models:/NAME@alias or models:/NAME/VERSION URI"
        )
    try:
        return Path(download_artifacts(artifact_uri=model_uri))
    except (MlflowException, OSError, ValueError) as err:
        raise _load_error(model_uri, err) from None


def load_predictor(model_uri: str, tracking_uri: str | None = None) -> Any:
    """The in-process Predictor behind a logged model (``models:/…``, ``runs:/…`` or a path)."""
    if tracking_uri:
        with _tracking_uri(tracking_uri):
            local = _download(model_uri)
    else:
        local = _download(model_uri)
    path = local / "artifacts" / PREDICTOR_FILE
    if not path.is_file():
        raise ModelError(f"cannot load model {model_uri!r}: it has no {PREDICTOR_FILE} artifact")
    with open(path, "rb") as fh:
        return pickle.load(fh)


def load_pyfunc(model_uri: str, tracking_uri: str | None = None) -> Any:
    """``mlflow.pyfunc.load_model`` against ``tracking_uri`` (default: the current one)."""
    from mlflow.exceptions import MlflowException

    try:
        if tracking_uri:
            with _tracking_uri(tracking_uri):
                return mlflow.pyfunc.load_model(str(_download(model_uri)))
        return mlflow.pyfunc.load_model(str(_download(model_uri)))
    except (MlflowException, OSError) as err:
        raise _load_error(model_uri, err) from None


def _tracking_uri(uri: str):
    from orchestrator.tracking import use_tracking_uri

    return use_tracking_uri(uri)


# --------------------------------------------------------------------------- batch prediction
def predict_file(
    model_uri: str, data_path: str, output: str | None = None, tracking_uri: str | None = None
) -> pd.DataFrame:
    """Predict a raw data file (CSV/Parquet, NPZ, image folder) with a logged model.

    The frame has ``prediction`` (class names or values) and ``proba_<class>`` columns, led by a
    ``file`` column for image folders; it is written as CSV to ``output`` when given.
    """
    predictor = load_predictor(model_uri, tracking_uri)
    X, lengths, names = read_prediction_input(predictor, data_path)
    check_batch(predictor, X, extra="ignore")
    try:
        frame = predictor.predict(X, lengths)
    except ValueError as err:
        raise DataError(f"cannot predict {data_path}: {err}") from None
    if names is not None:
        frame.insert(0, "file", names)
    if output:
        Path(output).expanduser().parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(output, index=False)
    return frame


def export_model(
    model_uri: str, fmt: str, output: str, tracking_uri: str | None = None
) -> dict[str, Any]:
    """Export a logged model's network as ``torchscript`` or ``onnx`` (``orchestrator.export``)."""
    from orchestrator.export import export_predictor

    return export_predictor(load_predictor(model_uri, tracking_uri), fmt, output)


# --------------------------------------------------------------------------- REST server
class StrictModel:
    """A PyFuncModel that rejects bad batches (extra columns included) before MLflow's schema.

    MLflow's scoring server only needs ``metadata`` and ``predict(data, params)``.
    """

    def __init__(self, model: Any, predictor: Any) -> None:
        self._model = model
        self.predictor = predictor
        self.metadata = model.metadata

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        try:
            check_batch(self.predictor, prepare_input(self.predictor, data), extra="error")
        except (AutoMLError, ValueError, KeyError, TypeError) as err:
            raise bad_request(err) from None
        return self._model.predict(data, params=params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def one_line_message(body: bytes) -> bytes:
    """A 400 answer's JSON with its message cut to the one line that names the problem.

    MLflow's scoring server wraps a model's error as "Failed to predict data '<the whole batch,
    printed>'. \nError: <message>"; the batch is what the caller sent, the message what they
    need. A body that is not such JSON is returned as it is.
    """
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    message = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(message, str):
        return body
    if message.startswith("Failed to predict"):
        message = message.rsplit("\nError: ", 1)[-1]
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    payload["message"] = lines[0] if lines else message
    return json.dumps(payload).encode()


def build_app(
    model_uri: str, tracking_uri: str | None = None, max_body_mb: float = DEFAULT_MAX_BODY_MB
) -> Any:
    """MLflow's FastAPI scoring app (``/invocations``, ``/ping``, ``/version``) for a model; a bad
    request's answer (400) carries a one-line message, a body over ``max_body_mb`` MiB gets 413."""
    from fastapi import Request, Response
    from mlflow.pyfunc import scoring_server

    if not max_body_mb > 0:
        raise ConfigError(f"--max-body-mb must be a positive number of MiB, got {max_body_mb}")
    model = load_pyfunc(model_uri, tracking_uri)
    predictor = model.unwrap_python_model().predictor
    app = scoring_server.init(StrictModel(model, predictor))

    @app.middleware("http")
    async def one_line_errors(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        if response.status_code != 400:
            return response
        body = b"".join([chunk async for chunk in response.body_iterator])
        return Response(one_line_message(body), status_code=400, media_type="application/json")

    # added last, so outermost: an oversized body is refused before anything reads it
    app.add_middleware(BodySizeLimit, max_bytes=int(max_body_mb * MIB))
    return app


def serve(
    model_uri: str,
    host: str = "127.0.0.1",
    port: int = 5001,
    tracking_uri: str | None = None,
    max_body_mb: float = DEFAULT_MAX_BODY_MB,
) -> None:
    """Serve ``model_uri`` over REST with uvicorn until interrupted (loopback by default); a
    request body over ``max_body_mb`` MiB is answered 413."""
    import uvicorn

    app = build_app(model_uri, tracking_uri, max_body_mb)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def main(argv: list[str] | None = None) -> int:
    """``python -m orchestrator.serving --model URI [--host H] [--port N] [--tracking-uri U]
    [--max-body-mb MB]``."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.serving", description=serve.__doc__
    )
    parser.add_argument("--model", required=True, help="runs:/…, models:/NAME@alias or a folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument(
        "--max-body-mb",
        type=float,
        default=DEFAULT_MAX_BODY_MB,
        help="largest request body in MiB; a larger one is answered 413 (default: %(default)g)",
    )
    args = parser.parse_args(argv)
    try:
        serve(args.model, args.host, args.port, args.tracking_uri, args.max_body_mb)
    except AutoMLError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
