"""The fitted Predictor as an MLflow pyfunc model: raw rows in, labels and probabilities out.

The model directory carries the pickled :class:`~orchestrator.predictor.Predictor` (preprocessing,
target encoder and network, on the CPU) and, as ``code_paths``, the project packages, so that
``mlflow.pyfunc.load_model(uri)`` works in a fresh process and in ``mlflow models serve``.
"""

from __future__ import annotations

import contextlib
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
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import AnyType, ColSpec, Schema, TensorSpec

from orchestrator.errors import AutoMLError, DataError, ModelError
from orchestrator.scoring import check_batch, raw_shape, read_prediction_input

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CODE_PACKAGES = ("orchestrator", "models", "data")
PREDICTOR_ARTIFACT = "predictor"
PREDICTOR_FILE = "predictor.pkl"
PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


_raw_shape = raw_shape  # the name tests and older callers use


def prepare_input(predictor: Any, model_input: Any) -> Any:
    """Turn what a pyfunc/REST caller sends into what :meth:`Predictor.predict` accepts.

    Tables take a DataFrame of raw rows (a dict or list of records becomes one). Images take
    arrays of the fitted shape, or flattened rows that are reshaped to ``(N, H, W, C)``.
    Sequences take ``(N, T, F)`` of any length ``T`` (NaN after each series' end), ``(N, T)``
    for one feature, flattened rows, or a list of series of different lengths.
    """
    if predictor.modality == "table":
        if isinstance(model_input, pd.DataFrame):
            return model_input
        if isinstance(model_input, dict):
            return pd.DataFrame(model_input)
        if isinstance(model_input, np.ndarray) and model_input.ndim == 2:
            columns = getattr(predictor.preprocessor, "columns_", None)
            if columns is not None and len(columns) == model_input.shape[1]:
                return pd.DataFrame(model_input, columns=columns)
        return pd.DataFrame(model_input)
    if isinstance(model_input, pd.DataFrame):
        array = model_input.to_numpy(dtype=np.float32, na_value=np.nan)
    elif isinstance(model_input, dict) and len(model_input) == 1:
        array = _array(next(iter(model_input.values())))
    else:
        array = _array(model_input)
    shape = _raw_shape(predictor.preprocessor, predictor.modality)
    if shape is None or array.shape[1:] == shape:
        return array
    if predictor.modality == "sequence":
        return _sequences(array, n_features=shape[1])
    size = int(np.prod(shape))
    if array.size % size:
        raise ValueError(
            f"{predictor.modality} input must have {size} values per sample (shape {shape}), "
            f"got an array of shape {array.shape}"
        )
    return array.reshape(-1, *shape)


def _array(values: Any) -> np.ndarray:
    """``values`` as float32; a list of sequences of different lengths is padded with NaN."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        return values.astype(np.float32, copy=False)
    if isinstance(values, (list, tuple, np.ndarray)) and len(values):
        items = [np.asarray(v, dtype=np.float32) for v in values]
        if len({item.shape for item in items}) > 1 and all(item.ndim >= 1 for item in items):
            steps = max(item.shape[0] for item in items)
            rest = items[0].shape[1:]
            out = np.full((len(items), steps, *rest), np.nan, dtype=np.float32)
            for i, item in enumerate(items):
                if item.shape[1:] != rest:
                    raise ValueError(
                        f"sequence {i} has shape {item.shape}; every step needs the same "
                        f"features, {rest}"
                    )
                out[i, : item.shape[0]] = item
            return out
    return np.asarray(values, dtype=np.float32)


def _sequences(array: np.ndarray, n_features: int) -> np.ndarray:
    """Sequence input of any length as ``(N, T, F)``: ``(N, T, F)`` as is, ``(N, T)`` when there
    is one feature, flattened rows ``(N, T * F)`` otherwise, and one series ``(T,)``."""
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim == 2:
        if array.shape[1] % n_features:
            raise ValueError(
                f"sequence rows must hold T steps of {n_features} features (a multiple of "
                f"{n_features} values), got {array.shape[1]} values"
            )
        return array.reshape(array.shape[0], -1, n_features)
    return array


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


# MLflow's names for the raw column types, by numpy kind; every other column reads as string
MLFLOW_TYPES = {"i": "long", "u": "long", "f": "double", "b": "boolean", "M": "datetime"}


def raw_input_types(predictor: Any) -> dict[str, str]:
    """Each input column's type in MLflow's words, from the dtype pandas read it with in
    training: int64 is ``long``, float64 ``double``, bool ``boolean``, text ``string``."""
    read = getattr(predictor, "input_types", None) or {}
    out = {}
    for column in getattr(predictor.preprocessor, "columns_", []):
        dtype = read.get(str(column), "object")
        try:
            kind = np.dtype(dtype).kind
        except TypeError:  # pandas extension dtypes: Int64, boolean, string, category
            kind = {"Int": "i", "UIn": "u", "Flo": "f", "boo": "b"}.get(str(dtype)[:3], "O")
        out[str(column)] = MLFLOW_TYPES.get(kind, "string")
    return out


def table_input_schema(preprocessor: Any) -> Schema:
    """The raw columns, in order; those with missing values in training are optional.

    Every column is typed ``Any``: MLflow's schema enforcement refuses int64 for a double column,
    float (an int column with a gap) for a long one, bool for either, and category for string,
    while the preprocessing reads all of them. The types as read in training are in the model's
    metadata (``input_types``, :func:`raw_input_types`).
    """
    optional = set(getattr(preprocessor, "optional_columns_", ()))
    return Schema(
        [ColSpec(AnyType(), str(c), required=c not in optional) for c in preprocessor.columns_]
    )


def predictor_signature(predictor: Any, input_example: Any) -> ModelSignature:
    """Signature: the raw input (table columns; sequences ``(N, T, F)`` of any ``T``) and the
    prediction frame inferred from the example's prediction."""
    prepared = prepare_input(predictor, input_example)
    output = predictor.predict(prepared)
    outputs = infer_signature(np.zeros(1), output).outputs
    if predictor.modality == "table":
        return ModelSignature(table_input_schema(predictor.preprocessor), outputs)
    if predictor.modality == "sequence":
        n_features = int(predictor.preprocessor.n_features_)
        spec = TensorSpec(np.dtype(np.float32), (-1, -1, n_features))
        return ModelSignature(Schema([spec]), outputs)
    return infer_signature(np.asarray(prepared, dtype=np.float32), output)


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


def build_app(model_uri: str, tracking_uri: str | None = None) -> Any:
    """MLflow's FastAPI scoring app (``/invocations``, ``/ping``, ``/version``) for a model."""
    from mlflow.pyfunc import scoring_server

    model = load_pyfunc(model_uri, tracking_uri)
    predictor = model.unwrap_python_model().predictor
    return scoring_server.init(StrictModel(model, predictor))


def serve(
    model_uri: str, host: str = "127.0.0.1", port: int = 5001, tracking_uri: str | None = None
) -> None:
    """Serve ``model_uri`` over REST with uvicorn until interrupted (loopback by default)."""
    import uvicorn

    app = build_app(model_uri, tracking_uri)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def main(argv: list[str] | None = None) -> int:
    """``python -m orchestrator.serving --model URI [--host H] [--port N] [--tracking-uri U]``."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.serving", description=serve.__doc__
    )
    parser.add_argument("--model", required=True, help="runs:/…, models:/NAME@alias or a folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    try:
        serve(args.model, args.host, args.port, args.tracking_uri)
    except AutoMLError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
