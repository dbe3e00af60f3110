"""The fitted model as users see it: raw input in, labels and probabilities out.

A ``Predictor`` bundles the fitted preprocessing, the target encoder and the network, so that the
same object serves ``automl train``'s test evaluation, the MLflow pyfunc and the REST server.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from data import sequence_lengths
from models import predict
from orchestrator.errors import AutoMLWarning


class LengthWarning(AutoMLWarning):
    """A sequence was longer or shorter than its model can read exactly."""


def fit_lengths(network: Any, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Sequences ``(N, T, F)`` as ``network`` can read them, warning where that is approximate.

    Every sequence family reads any length. Two settings have limits: a ``cnn1d`` with
    ``padding: valid`` needs ``min_length`` steps (shorter batches are padded with zeros, which
    the masks then skip), and a transformer with ``positional: learned`` has position codes for
    the ``max_length`` steps seen in training (later steps share the last code).
    """
    shortest = int(getattr(network, "min_length", 1) or 1)
    if x.shape[1] < shortest:
        warnings.warn(
            f"sequences of {x.shape[1]} steps are shorter than the {shortest} this "
            f"{type(network).__name__} needs; padded with zeros to {shortest} steps",
            LengthWarning,
            stacklevel=3,
        )
        pad = np.zeros((x.shape[0], shortest - x.shape[1], x.shape[2]), dtype=x.dtype)
        x = np.concatenate([x, pad], axis=1)
    longest = getattr(network, "max_length", None)
    if longest is not None and len(lengths) and int(np.max(lengths)) > longest:
        warnings.warn(
            f"sequences of up to {int(np.max(lengths))} steps, but the learned positional "
            f"encoding covers {longest}; later steps share the last position's code",
            LengthWarning,
            stacklevel=3,
        )
    return x


@dataclass
class Predictor:
    preprocessor: Any
    target: Any
    network: torch.nn.Module
    task: str
    family: str
    modality: str
    # a table's raw columns and the dtypes they were read with (Dataset.column_types)
    input_types: dict[str, str] | None = None

    def predict_output(self, X: Any, lengths: np.ndarray | None = None) -> np.ndarray:
        """Probabilities ``(N, K)`` for classification, values ``(N,)`` in target units."""
        x = self.preprocessor.transform(X)
        if self.modality == "sequence":
            if lengths is None:
                lengths = sequence_lengths(np.asarray(X, dtype=np.float32))
            x = fit_lengths(self.network, x, np.asarray(lengths))
        output = predict(self.network, self.task, x, lengths)
        if self.task == "regression":
            return self.target.inverse_transform(output).astype(np.float64)
        return output.astype(np.float64)

    def predict(self, X: Any, lengths: np.ndarray | None = None) -> pd.DataFrame:
        """A frame with ``prediction`` and, for classification, ``proba_<class>`` columns."""
        output = self.predict_output(X, lengths)
        if self.task == "regression":
            return pd.DataFrame({"prediction": output})
        classes = list(self.target.classes_)
        frame = pd.DataFrame(output, columns=[f"proba_{c}" for c in classes])
        frame.insert(0, "prediction", np.asarray(classes, dtype=object)[output.argmax(axis=1)])
        return frame
