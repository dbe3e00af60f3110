"""The fitted model as users see it: raw input in, labels and probabilities out.

A ``Predictor`` bundles the fitted preprocessing, the target encoder and the network, so that the
same object serves ``automl train``'s test evaluation, the MLflow pyfunc and the REST server.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

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
                from data import sequence_lengths  # scikit-learn's module: not at import time

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

    def eval(self) -> Predictor:
        """The network in evaluation mode (after unpickling)."""
        self.network.eval()
        return self

    def cpu_copy(self) -> Predictor:
        """A copy whose network lives on the CPU, so its pickle loads on machines without a GPU."""
        clone = copy.copy(self)
        clone.network = copy.deepcopy(self.network).cpu().eval()
        return clone


@dataclass
class FoldEnsemble:
    """The k fold models of cross-validation as one model (``search.refit: folds``).

    Each member is a fold's own Predictor: its preprocessing fitted on that fold's training
    part, its network at that fold's best epoch. The ensemble averages their probabilities
    (classification) or their values in target units (regression): bagging that costs no more
    training. The members read the same raw input; a column that had gaps in any member's
    training may be left out of a request (every member imputes it).
    """

    members: list[Predictor]

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a fold ensemble needs at least one member")
        optional: list[str] = []
        for member in self.members:
            for column in getattr(member.preprocessor, "optional_columns_", ()):
                if column not in optional:
                    optional.append(column)
        if optional:  # on copies: the members' preprocessors may be shared (fold caches)
            members = []
            for member in self.members:
                member = copy.copy(member)
                member.preprocessor = copy.copy(member.preprocessor)
                member.preprocessor.optional_columns_ = list(optional)
                members.append(member)
            self.members = members

    # what describes the raw input and the output is the same in every member
    @property
    def first(self) -> Predictor:
        return self.members[0]

    @property
    def preprocessor(self) -> Any:
        return self.first.preprocessor

    @property
    def target(self) -> Any:
        return self.first.target

    @property
    def network(self) -> torch.nn.Module:
        return self.first.network

    @property
    def task(self) -> str:
        return self.first.task

    @property
    def family(self) -> str:
        return self.first.family

    @property
    def modality(self) -> str:
        return self.first.modality

    @property
    def input_types(self) -> dict[str, str] | None:
        return self.first.input_types

    def predict_output(self, X: Any, lengths: np.ndarray | None = None) -> np.ndarray:
        """The members' mean output: probabilities ``(N, K)`` or values ``(N,)``."""
        outputs = [member.predict_output(X, lengths) for member in self.members]
        return np.mean(outputs, axis=0)

    predict = Predictor.predict

    def eval(self) -> FoldEnsemble:
        for member in self.members:
            member.eval()
        return self

    def cpu_copy(self) -> FoldEnsemble:
        return FoldEnsemble([member.cpu_copy() for member in self.members])
