"""The fitted model as users see it: raw input in, labels and probabilities out.

A ``Predictor`` bundles the fitted preprocessing, the target encoder and the network, so that the
same object serves ``automl train``'s test evaluation, the MLflow pyfunc and the REST server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from data import sequence_lengths
from models import predict


@dataclass
class Predictor:
    preprocessor: Any
    target: Any
    network: torch.nn.Module
    task: str
    family: str
    modality: str

    def predict_output(self, X: Any, lengths: np.ndarray | None = None) -> np.ndarray:
        """Probabilities ``(N, K)`` for classification, values ``(N,)`` in target units."""
        x = self.preprocessor.transform(X)
        if self.modality == "sequence" and lengths is None:
            lengths = sequence_lengths(np.asarray(X, dtype=np.float32))
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
