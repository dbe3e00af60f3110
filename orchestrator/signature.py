"""A logged model's signature: what MLflow is told the model takes and returns.

Table columns are typed ``Any`` (the raw dtypes read in training go into the model's metadata as
``input_types``) and are optional where training had gaps; sequences are a ``(-1, -1, F)`` tensor
of any length; images the prepared example's shape. ``serving.log_predictor`` uses these.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import AnyType, ColSpec, Schema, TensorSpec

from orchestrator.scoring import prepare_input

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
