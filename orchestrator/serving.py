"""The fitted Predictor as an MLflow pyfunc model: raw rows in, labels and probabilities out.

The model directory carries the pickled :class:`~orchestrator.predictor.Predictor` (preprocessing,
target encoder and network, on the CPU) and, as ``code_paths``, the project packages, so that
``mlflow.pyfunc.load_model(uri)`` works in a fresh process and in ``mlflow models serve``.
"""

from __future__ import annotations

import copy
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import ColSpec, DataType, Schema

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CODE_PACKAGES = ("orchestrator", "models", "data")
PREDICTOR_ARTIFACT = "predictor"
PREDICTOR_FILE = "predictor.pkl"


def _raw_shape(preprocessor: Any, modality: str) -> tuple[int, ...] | None:
    """The per-sample shape of raw image/sequence input, as the preprocessor was fitted on."""
    if modality == "image":
        shape = getattr(preprocessor, "input_shape_", None)
        return tuple(int(d) for d in shape) if shape is not None else None
    if modality == "sequence":
        steps, feats = (
            getattr(preprocessor, "n_steps_", None),
            getattr(preprocessor, "n_features_", None),
        )
        return (int(steps), int(feats)) if steps is not None and feats is not None else None
    return None


def prepare_input(predictor: Any, model_input: Any) -> Any:
    """Turn what a pyfunc/REST caller sends into what :meth:`Predictor.predict` accepts.

    Tables take a DataFrame of raw rows (a dict or list of records becomes one). Images and
    sequences take arrays of the fitted shape, or flattened rows (a DataFrame or 2-D array) that
    are reshaped to ``(N, *shape)``.
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
        array = np.asarray(next(iter(model_input.values())), dtype=np.float32)
    else:
        array = np.asarray(model_input, dtype=np.float32)
    shape = _raw_shape(predictor.preprocessor, predictor.modality)
    if shape is None or array.shape[1:] == shape:
        return array
    size = int(np.prod(shape))
    if array.size % size:
        raise ValueError(
            f"{predictor.modality} input must have {size} values per sample (shape {shape}), "
            f"got an array of shape {array.shape}"
        )
    return array.reshape(-1, *shape)


class PredictorModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of a pickled Predictor; predict returns Predictor.predict's frame."""

    # raw frames of any schema in, a frame out: the signature comes from the input example, so
    # MLflow 3's type-hint wrapping of predict (and its warning about missing hints) is skipped
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        with open(context.artifacts[PREDICTOR_ARTIFACT], "rb") as fh:
            self.predictor = pickle.load(fh)
        self.predictor.network.eval()

    # no type hints here: MLflow 3 would try to derive a schema from them
    def predict(self, context, model_input, params=None):  # noqa: ANN001
        return self.predictor.predict(prepare_input(self.predictor, model_input))


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


def _cpu_copy(predictor: Any) -> Any:
    """A copy whose network lives on the CPU, so the pickle loads on machines without a GPU."""
    clone = copy.copy(predictor)
    clone.network = copy.deepcopy(predictor.network).cpu().eval()
    return clone


def _relaxed(schema: Schema) -> Schema:
    """Every input column optional (the preprocessor imputes) and integers widened to doubles."""
    if not isinstance(schema, Schema) or schema.is_tensor_spec():
        return schema
    widen = {DataType.integer, DataType.long, DataType.float}
    cols = [
        ColSpec(DataType.double if c.type in widen else c.type, c.name, required=False)
        for c in schema.inputs
    ]
    return Schema(cols)


def predictor_signature(predictor: Any, input_example: Any) -> ModelSignature:
    """Signature inferred from an input example and its prediction."""
    prepared = prepare_input(predictor, input_example)
    output = predictor.predict(prepared)
    if predictor.modality == "table":
        signature = infer_signature(prepared, output)
        signature.inputs = _relaxed(signature.inputs)
        return signature
    return infer_signature(np.asarray(prepared, dtype=np.float32), output)


def log_predictor(predictor: Any, name: str = "model", input_example: Any = None, **kwargs: Any):
    """Log ``predictor`` as a pyfunc model in the active run; returns MLflow's ``ModelInfo``.

    Extra keyword arguments go to ``mlflow.pyfunc.log_model`` (``registered_model_name``…).
    """
    signature = predictor_signature(predictor, input_example) if input_example is not None else None
    if input_example is not None and predictor.modality != "table":
        input_example = np.asarray(prepare_input(predictor, input_example), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / PREDICTOR_FILE
        with open(path, "wb") as fh:
            pickle.dump(_cpu_copy(predictor), fh)
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


def load_predictor(model_uri: str, tracking_uri: str | None = None) -> Any:
    """The in-process Predictor behind a logged model (``models:/…``, ``runs:/…`` or a path)."""
    from mlflow.artifacts import download_artifacts

    if tracking_uri:
        with _tracking_uri(tracking_uri):
            local = download_artifacts(artifact_uri=model_uri)
    else:
        local = download_artifacts(artifact_uri=model_uri)
    with open(Path(local) / "artifacts" / PREDICTOR_FILE, "rb") as fh:
        return pickle.load(fh)


def load_pyfunc(model_uri: str, tracking_uri: str | None = None) -> Any:
    """``mlflow.pyfunc.load_model`` against ``tracking_uri`` (default: the current one)."""
    if tracking_uri:
        with _tracking_uri(tracking_uri):
            return mlflow.pyfunc.load_model(model_uri)
    return mlflow.pyfunc.load_model(model_uri)


def _tracking_uri(uri: str):
    from orchestrator.tracking import use_tracking_uri

    return use_tracking_uri(uri)
