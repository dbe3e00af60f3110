"""TorchScript and ONNX exports give the MLflow model's outputs on the same preprocessed input."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from orchestrator import serving
from orchestrator.config import Config, apply_overrides
from orchestrator.errors import ConfigError
from orchestrator.export import export_predictor
from tests.test_serving_batch import *  # noqa: F403  (the fixtures)
from tests.test_serving_batch import raw_rows
from tests.test_tracking_fixtures import *  # noqa: F403

TOL = 1e-5


def needs_onnx(fmt: str) -> None:
    """onnx, onnxscript and onnxruntime are dependencies: a missing one is a failure."""
    if fmt == "onnx":
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401


def run_exported(fmt: str, path: str, x: np.ndarray) -> np.ndarray:
    if fmt == "torchscript":
        module = torch.jit.load(path)
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@functools.lru_cache(maxsize=1)
def _image_predictor():
    from orchestrator.pipeline import run_training

    overrides = {
        "data.source": "builtin:digits",
        "model.family": "cnn",
        "split.folds": 2,
        "training.epochs": 1,
        "seed": 0,
        "search.refit": "best",  # one network
    }
    return run_training(apply_overrides(Config(), overrides))


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_table_export_matches_mlflow_model(logged_model, tmp_path, fmt):
    """The default model is the fold ensemble: one network and one preprocessing JSON per
    fold, and a manifest; the mean of the members' outputs is the MLflow model's output."""
    needs_onnx(fmt)
    raw = raw_rows(logged_model["result"])
    out = tmp_path / f"model.{'pt' if fmt == 'torchscript' else 'onnx'}"
    info = serving.export_model(
        logged_model["model_uri"], fmt, str(out), logged_model["tracking_uri"]
    )
    mlflow_model = serving.load_pyfunc(logged_model["model_uri"], logged_model["tracking_uri"])
    ensemble = mlflow_model.unwrap_python_model().predictor
    members = ensemble.members
    assert len(members) == logged_model["result"].config.split.folds >= 2
    manifest = json.loads(Path(info["ensemble"]).read_text())
    assert manifest["combine"] == "mean" and len(manifest["members"]) == len(members)
    expected = mlflow_model.predict(raw).filter(like="proba_").to_numpy()
    outputs = []
    for k, (member, entry) in enumerate(zip(members, manifest["members"], strict=True), 1):
        path = tmp_path / entry["model"]
        assert path.is_file() and info["model"][k - 1] == str(path)
        assert entry["model"] == f"model.fold{k}{out.suffix}"
        x = member.preprocessor.transform(raw)  # one batch size at export, another here
        outputs.append(run_exported(fmt, str(path), x))
        np.testing.assert_allclose(outputs[-1], member.predict_output(raw), atol=TOL)
    np.testing.assert_allclose(np.mean(outputs, axis=0), expected, atol=TOL)

    x = members[0].preprocessor.transform(raw)
    params = json.loads((tmp_path / manifest["members"][0]["preprocessing"]).read_text())
    assert params["modality"] == "table" and params["class_names"] == ["no", "yes"]
    assert params["columns"] == ["x1", "x2", "color"] and params["input_shape"] == [x.shape[1]]
    assert set(params["categories"]["color"]) == {"blue", "green", "red"}
    # the JSON alone reproduces the numeric part of the preprocessing
    filled = raw["x1"].fillna(params["numeric_impute"]["x1"]).to_numpy()
    scaled = (filled - params["numeric_scaling"]["offset"]["x1"]) / params["numeric_scaling"][
        "scale"
    ]["x1"]
    column = params["feature_names_out"].index("x1")
    np.testing.assert_allclose(x[:, column], scaled, atol=TOL)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_image_export_matches_predictor(tmp_path, fmt):
    needs_onnx(fmt)
    result = _image_predictor()
    predictor = result.predictor
    images = np.asarray(result.run.test.X[:5], dtype=np.float32)
    out = tmp_path / "cnn.bin"
    info = export_predictor(predictor, fmt, str(out))
    assert info["model"] == str(out) and out.is_file()
    x = predictor.preprocessor.transform(images)
    got = run_exported(fmt, str(out), x)
    np.testing.assert_allclose(got, predictor.predict_output(images), atol=TOL)

    params = json.loads(open(info["preprocessing"]).read())
    assert params["raw_shape"] == [8, 8, 1] and params["input_shape"] == [1, 8, 8]
    assert params["class_names"] == [str(i) for i in range(10)]
    rebuilt = ((images - np.float32(params["offset"])) / np.float32(params["scale"])).transpose(
        0, 3, 1, 2
    )
    np.testing.assert_allclose(rebuilt, x, atol=TOL)


def test_unknown_format_is_refused(logged_model, tmp_path):
    with pytest.raises(ConfigError, match="export format must be one of torchscript, onnx"):
        serving.export_model(
            logged_model["model_uri"], "tflite", str(tmp_path / "m"), logged_model["tracking_uri"]
        )
