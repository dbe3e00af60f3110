"""Standalone network artifacts (TorchScript, ONNX) of a Predictor, with its preprocessing as JSON.

The exported graph takes the *preprocessed* float32 input (what ``Predictor.preprocessor.transform``
returns) and gives what the MLflow model gives: class probabilities ``(N, K)`` or values ``(N,)``
in target units. ``<output>.preprocessing.json`` describes the raw-to-input transform so that a
runtime without Python can reproduce it. No MLflow here: ``serving.export_model`` loads the model.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from orchestrator.errors import ConfigError, ModelError

FORMATS = ("torchscript", "onnx")
OPSET = 18


class ExportedNetwork(nn.Module):
    """The network followed by the Predictor's output step (softmax, sigmoid or target scale)."""

    def __init__(self, network: nn.Module, task: str, n_outputs: int, mean: float, scale: float):
        super().__init__()
        self.network = network
        self.regression = task == "regression"
        self.binary_logit = task != "regression" and n_outputs == 1
        self.mean = float(mean)
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._output(self.network(x))

    def _output(self, out: torch.Tensor) -> torch.Tensor:
        # out: (batch, n_outputs)
        if self.regression:
            return out[:, 0] * self.scale + self.mean  # (batch,)
        if self.binary_logit:
            p = torch.sigmoid(out)
            return torch.cat([1 - p, p], dim=1)  # (batch, 2)
        return torch.softmax(out, dim=1)  # (batch, K)


class ExportedSequenceNetwork(ExportedNetwork):
    """:class:`ExportedNetwork` for sequences: ``(x, lengths)`` in, any batch and any length."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out = self.network(x, lengths)  # x: (batch, time, features), lengths: (batch,) int64
        return self._output(out)


def _exported_module(predictor: Any) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    network = copy.deepcopy(predictor.network).cpu().float().eval()
    shape = tuple(int(d) for d in predictor.preprocessor.output_shape_)
    example: tuple[torch.Tensor, ...] = (torch.zeros((2, *shape), dtype=torch.float32),)
    sequence = predictor.modality == "sequence"
    if sequence:
        # two different lengths, so nothing in the graph can specialise on one
        example = (torch.randn(2, *shape), torch.tensor([shape[0], max(1, shape[0] // 2)]))
    with torch.no_grad():
        n_outputs = int(network(*example).shape[-1])
    target = predictor.target
    module = (ExportedSequenceNetwork if sequence else ExportedNetwork)(
        network,
        predictor.task,
        n_outputs,
        getattr(target, "mean_", 0.0),
        getattr(target, "scale_", 1.0),
    ).eval()
    return module, example


def _list(values: Any) -> list:
    return np.asarray(values).tolist()


def _offset_scale(scaler: Any) -> dict[str, list] | None:
    """Any fitted scaler as ``(x - offset) / scale``."""
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    if isinstance(scaler, StandardScaler):
        scale = scaler.scale_ if scaler.scale_ is not None else np.ones_like(scaler.mean_)
        return {"offset": _list(scaler.mean_), "scale": _list(scale)}
    if isinstance(scaler, MinMaxScaler):  # x * s + m == (x - (-m / s)) / (1 / s)
        return {"offset": _list(-scaler.min_ / scaler.scale_), "scale": _list(1 / scaler.scale_)}
    if isinstance(scaler, RobustScaler):
        return {"offset": _list(scaler.center_), "scale": _list(scaler.scale_)}
    return None


def _table_parameters(pre: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "columns": list(map(str, pre.columns_)),
        "numeric_columns": list(map(str, pre.numeric_columns_)),
        "categorical_columns": list(map(str, pre.categorical_columns_)),
        "feature_names_out": list(pre.feature_names_out_),
        "category_spellings": {str(k): v for k, v in pre.corrections_.category_maps.items()},
    }
    parts = pre.column_transformer_.named_transformers_
    if "num" in parts:
        num = parts["num"]
        out["numeric_impute"] = dict(
            zip(out["numeric_columns"], _list(num["impute"].statistics_), strict=False)
        )
        scaling = _offset_scale(num["scale"])
        out["numeric_scaling"] = (
            {k: dict(zip(out["numeric_columns"], v, strict=False)) for k, v in scaling.items()}
            if scaling
            else None
        )
    if "cat" in parts:
        cat = parts["cat"]
        cols = out["categorical_columns"]
        out["categorical_impute"] = dict(
            zip(cols, map(str, cat["impute"].statistics_), strict=False)
        )
        out["categorical_encoding"] = pre.encoding
        out["categories"] = {
            c: [str(v) for v in cats]
            for c, cats in zip(cols, cat["encode"].categories_, strict=False)
        }
    return out


def preprocessing_parameters(predictor: Any) -> dict[str, Any]:
    """The Predictor's raw-to-input transform and output meaning, as plain JSON values."""
    pre = predictor.preprocessor
    params: dict[str, Any] = {
        "modality": predictor.modality,
        "family": predictor.family,
        "task": predictor.task,
        "scaling": getattr(pre, "scaling", None),
        "input_shape": [int(d) for d in pre.output_shape_],
    }
    if predictor.task == "regression":
        params["output"] = "values (N,) in target units"
        params["target_mean"] = float(predictor.target.mean_)
        params["target_scale"] = float(predictor.target.scale_)
    else:
        params["output"] = "class probabilities (N, K)"
        params["class_names"] = [str(c) for c in predictor.target.classes_]
    if predictor.modality == "table":
        params.update(_table_parameters(pre))
    else:
        params["offset"], params["scale"] = _list(pre.offset_), _list(pre.scale_)
        if predictor.modality == "image":
            params["raw_shape"] = [int(d) for d in pre.input_shape_]
            params["layout"] = "raw (N, H, W, C); input (N, C, H, W) = ((raw - offset) / scale)"
        else:
            params["raw_shape"] = [None, int(pre.n_features_)]
            params["series_norm"] = bool(getattr(pre, "series_norm_", False))
            params["min_length"] = int(getattr(predictor.network, "min_length", 1) or 1)
            params["layout"] = (
                "inputs: (N, T, F) float32 for any T, and lengths (N,) int64; each series first "
                "z-normalised over its own valid steps when series_norm, then (raw - offset) / "
                "scale, NaN padding after each length set to 0; batches shorter than "
                "min_length padded with 0 to it"
            )
    return params


def _to_torchscript(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(module, example, check_trace=False)
    traced.save(str(path))


def _cell(network: nn.Module) -> str | None:
    return getattr(network, "cell", None)


def _shortest(module: nn.Module) -> int:
    return max(1, int(getattr(module.network, "min_length", 1) or 1))


def _to_onnx(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> None:
    batch = torch.export.Dim("batch", min=1)
    shapes: dict[str, Any] = {"x": {0: batch}}
    names = ["input"]
    if len(example) == 2:  # sequences: any length too (from the network's shortest)
        time = torch.export.Dim("time", min=_shortest(module))
        shapes = {"x": {0: batch, 1: time}, "lengths": {0: batch}}
        names = ["input", "lengths"]
    torch.onnx.export(
        module,
        example,
        str(path),
        input_names=names,
        output_names=["output"],
        dynamic_shapes=shapes,
        opset_version=OPSET,
        dynamo=True,
        external_data=False,
        verbose=False,
    )


def export_predictor(predictor: Any, fmt: str, output: str) -> dict[str, Any]:
    """Write the network as ``fmt`` to ``output`` and its preprocessing next to it.

    Returns ``{"format", "model", "preprocessing", "input_shape", "output"}`` (paths as strings;
    for a fold ensemble, lists of the members' paths and ``ensemble``, see
    :func:`export_ensemble`).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    members = getattr(predictor, "members", None)
    if members is not None:
        return export_ensemble(members, fmt, output)
    network = predictor.network
    if fmt == "onnx" and (getattr(network, "bidirectional", False) or _cell(network) == "rnn"):
        # torch.onnx (torch 2.13) fixes the time axis of a plain RNN and of the per-direction
        # layers of a bidirectional one; unidirectional GRU/LSTM export with any length
        raise ModelError(
            "onnx export of a bidirectional or plain (rnn) recurrent network is not supported "
            "(its time axis would be fixed); export it as torchscript, or use a unidirectional "
            "gru or lstm"
        )
    path = Path(output).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    module, example = _exported_module(predictor)
    try:
        (_to_torchscript if fmt == "torchscript" else _to_onnx)(module, example, path)
    except Exception as err:  # tracing/exporting failures are the user's to see, in one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"{fmt} export of the {predictor.family} network failed: {first}") from err
    params = preprocessing_parameters(predictor)
    params["artifact"] = {
        "format": fmt,
        "file": path.name,
        "input_name": "input",
        **({"lengths_name": "lengths"} if predictor.modality == "sequence" else {}),
    }
    side = path.with_name(path.name + ".preprocessing.json")
    side.write_text(json.dumps(params, indent=2))
    return {
        "format": fmt,
        "model": str(path),
        "preprocessing": str(side),
        "input_shape": params["input_shape"],
        "output": params["output"],
    }


def export_ensemble(members: list[Any], fmt: str, output: str) -> dict[str, Any]:
    """A fold ensemble (``search.refit: folds``) as one file per member, ``NAME.foldK.EXT``, each
    with its own preprocessing JSON, and ``NAME.ensemble.json`` naming them: the model's output
    is the mean of the members' outputs (probabilities, or values in target units)."""
    path = Path(output).expanduser()
    parts = [
        export_predictor(member, fmt, str(path.with_name(f"{path.stem}.fold{k}{path.suffix}")))
        for k, member in enumerate(members, start=1)
    ]
    manifest = {
        "format": fmt,
        "combine": "mean",
        "output": parts[0]["output"],
        "members": [
            {"model": Path(p["model"]).name, "preprocessing": Path(p["preprocessing"]).name}
            for p in parts
        ],
    }
    side = path.with_name(path.name + ".ensemble.json")
    side.write_text(json.dumps(manifest, indent=2))
    return {
        "format": fmt,
        "model": [p["model"] for p in parts],
        "preprocessing": [p["preprocessing"] for p in parts],
        "ensemble": str(side),
        "input_shape": parts[0]["input_shape"],
        "output": parts[0]["output"],
    }
