"""Sequence models read any length: trained on lengths 5 to 20, they predict lengths 1, 20 and 60.

Issue 22, defect 1: test sequences longer than every training sequence were refused ("sequences
have 29 time steps, more than the 26 seen in training"). Checked through ``automl train``'s test
step, the pyfunc model, ``automl predict``, ``automl serve`` and the TorchScript and ONNX exports.
"""

from __future__ import annotations

import json
import shutil
import sys
import warnings

import mlflow
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from data.preprocessing import SequencePreprocessor
from data.tasks import TargetEncoder
from models import build_model
from orchestrator.cli import main
from orchestrator.config import SEQUENCE_FAMILIES, Config, ModelConfig, apply_overrides
from orchestrator.export import export_predictor
from orchestrator.predictor import LengthWarning, Predictor, fit_lengths
from orchestrator.serving import predict_checked
from orchestrator.tracked import run_tracked_training
from orchestrator.tracking import use_tracking_uri
from tests.test_serving_rest import free_port, invoke, running_server
from tests.test_tracking_fixtures import *  # noqa: F403  (store_template)

TEST_LENGTHS = (1, 20, 60)


def series(n: int, lengths: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two features per step; the class sets the frequency. NaN after each length."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    t = np.arange(lengths.max())[None, :]
    freq = (0.15 + 0.25 * y)[:, None]
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    X = np.stack([np.sin(freq * t + phase), np.cos(freq * t + phase)], axis=-1)
    X = (X + rng.normal(0, 0.1, X.shape)).astype(np.float32)
    X[np.arange(lengths.max())[None, :] >= lengths[:, None]] = np.nan
    return X, y


def short_and_long(n: int = 9, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lengths = np.resize(np.asarray(TEST_LENGTHS), n)
    X, y = series(n, lengths, seed)
    return X, y, lengths


# --------------------------------------------------------------------------- every family
SMALL = {
    "resnet1d": {"channels": [8, 8]},
    "inception": {"depth": 3, "filters": 4},
    "cnn1d": {"channels": [8, 8]},
    "rnn": {"hidden_size": 8},
    "lstm": {"hidden_size": 8, "bidirectional": True, "num_layers": 2},
    "gru": {"hidden_size": 8},
    "transformer": {"d_model": 8, "num_heads": 2, "positional": "learned"},
}


def small_predictor(family: str) -> Predictor:
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 21, size=12)
    X, y = series(12, lengths, seed=0)
    pre = SequencePreprocessor().fit(X)
    torch.manual_seed(0)
    spec = ModelConfig(family=family, head_sizes=[8], **SMALL[family])
    network = build_model(spec, pre.output_shape_, 3).eval()
    target = TargetEncoder("classification").fit(y)
    return Predictor(pre, target, network, "classification", family, "sequence")


def test_every_sequence_family_is_covered():
    assert set(SMALL) == set(SEQUENCE_FAMILIES)


@pytest.mark.parametrize("family", list(SMALL))
def test_predictor_and_exports_take_any_length(family, tmp_path):
    predictor = small_predictor(family)
    X, _, lengths = short_and_long()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LengthWarning)  # learned positions past 20 steps
        expected = predictor.predict_output(X)
        alone = [predictor.predict_output(X[i : i + 1, : lengths[i]]) for i in range(len(X))]
    assert expected.shape == (len(X), 3) and np.isfinite(expected).all()
    # a series gets the same prediction alone, at its own length, as in a padded batch
    np.testing.assert_allclose(np.concatenate(alone), expected, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LengthWarning)
        x = fit_lengths(predictor.network, predictor.preprocessor.transform(X), lengths)
    formats = ["torchscript", "onnx"]
    if family == "rnn" or getattr(predictor.network, "bidirectional", False):
        formats = ["torchscript"]  # refused in one line below
    for fmt in formats:
        out = export_predictor(predictor, fmt, str(tmp_path / f"model.{fmt}"))
        params = json.loads(open(out["preprocessing"]).read())
        assert params["raw_shape"] == [None, 2] and params["artifact"]["lengths_name"] == "lengths"
        for length in TEST_LENGTHS:
            rows = lengths == length
            xb = np.ascontiguousarray(x[rows, : max(length, params["min_length"])])
            got = run_export(fmt, out["model"], xb, lengths[rows])
            np.testing.assert_allclose(got, expected[rows], atol=1e-5, err_msg=f"{fmt} T={length}")


def run_export(fmt: str, path: str, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    if fmt == "torchscript":
        module = torch.jit.load(path)
        with torch.no_grad():
            return module(torch.from_numpy(x), torch.from_numpy(lengths.astype(np.int64))).numpy()
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x, "lengths": lengths.astype(np.int64)})[0]


@pytest.mark.parametrize("family", ["lstm", "rnn"])  # lstm: bidirectional here
def test_onnx_export_of_a_bidirectional_or_plain_rnn_is_refused_in_one_line(family, tmp_path):
    from orchestrator.errors import ModelError

    with pytest.raises(ModelError, match="bidirectional or plain.*torchscript"):
        export_predictor(small_predictor(family), "onnx", str(tmp_path / "m.onnx"))


def test_learned_positions_past_the_training_length_warn_once():
    predictor = small_predictor("transformer")
    X, _, _ = short_and_long()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        predictor.predict_output(X)
    messages = [str(w.message) for w in caught if issubclass(w.category, LengthWarning)]
    steps = predictor.preprocessor.n_steps_  # the longest training series
    assert len(messages) == 1 and f"covers {steps};" in messages[0]


def test_a_cnn1d_pads_series_shorter_than_its_blocks_need():
    predictor = small_predictor("cnn1d")
    assert predictor.network.min_length == 4  # two blocks that each pool by 2
    X, _, _ = short_and_long()
    with pytest.warns(LengthWarning, match="padded with zeros to 4 steps"):
        out = predictor.predict_output(X[:1, :1])
    assert out.shape == (1, 3)


# --------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def trained(store_template, tmp_path_factory) -> dict:
    """The default family (resnet1d, small) trained with tracking on lengths 5 to 20, tested on
    lengths 1, 20 and 60."""
    folder = tmp_path_factory.mktemp("anylength")
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 21, size=60)
    X, y = series(60, lengths, seed=0)
    np.savez(folder / "train.npz", X=X, y=y, lengths=lengths, modality="sequence")
    Xt, yt, lt = short_and_long(n=30)
    np.savez(folder / "test.npz", X=Xt, y=yt, lengths=lt, modality="sequence")
    shutil.copyfile(store_template, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    config = apply_overrides(
        Config(),
        {
            "data.source": str(folder / "train.npz"),
            "data.test_source": str(folder / "test.npz"),
            "model.channels": [16, 16],
            "split.folds": 2,
            "training.epochs": 25,
            "tracking.tracking_uri": uri,
            "tracking.experiment": "anylength",
            "tracking.registered_model": "anylength",
        },
    )
    result = run_tracked_training(config)
    return {"folder": folder, "uri": uri, "result": result, "test": (Xt, yt, lt)}


def test_automl_train_tests_on_longer_sequences(trained):
    metrics = trained["result"].refit.test_metrics
    assert metrics["accuracy"] > 0.8  # chance is 1/3; a length of 1 is hard, 20 and 60 are not


def test_pyfunc_takes_padded_and_ragged_sequences(trained):
    Xt, _, lengths = trained["test"]
    predictor = trained["result"].refit.predictor
    expected = predictor.predict(Xt)
    with use_tracking_uri(trained["uri"]):
        model = mlflow.pyfunc.load_model("models:/anylength@champion")
    schema = model.metadata.get_input_schema().inputs[0]
    assert tuple(schema.shape) == (-1, -1, 2)  # any batch, any length
    got = model.predict(Xt)
    np.testing.assert_array_equal(got["prediction"], expected["prediction"])
    # in process (no MLflow schema in between), a list of series of different lengths works too
    ragged = [Xt[i, : lengths[i]] for i in range(len(Xt))]
    got = predict_checked(predictor, ragged)
    np.testing.assert_array_equal(got["prediction"], expected["prediction"])


def test_automl_predict_reads_longer_sequences(trained, tmp_path):
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(
        main,
        [
            "predict",
            "--model",
            "models:/anylength@champion",
            "--data",
            str(trained["folder"] / "test.npz"),
            "--output",
            str(out),
            "--tracking-uri",
            trained["uri"],
        ],
    )
    assert result.exit_code == 0, result.output
    import pandas as pd

    got = pd.read_csv(out)
    expected = trained["result"].refit.predictor.predict(trained["test"][0])
    assert got["prediction"].astype(str).tolist() == expected["prediction"].astype(str).tolist()


def test_automl_serve_takes_any_length(trained):
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "orchestrator.cli",
        "serve",
        "--model",
        "models:/anylength@champion",
        "--port",
        str(port),
        "--tracking-uri",
        trained["uri"],
    ]
    Xt, _, lengths = trained["test"]
    predictor = trained["result"].refit.predictor
    with running_server(command, port) as url:
        for length in TEST_LENGTHS:
            rows = Xt[lengths == length][:, :length]
            response = invoke(url, {"inputs": rows.tolist()}, timeout=60)
            assert response.status_code == 200, (length, response.text)
            got = [p["prediction"] for p in response.json()["predictions"]]
            assert got == list(predictor.predict(rows)["prediction"]), length
