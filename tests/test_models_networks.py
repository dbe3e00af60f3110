"""Every model family: shapes, learning on tiny data, variable-length input, error messages."""

from __future__ import annotations

import pickle

import pytest
import torch

from models import FAMILIES, TensorData, Trainer, build_model, compute_metrics, seed_everything
from orchestrator.config import ModelConfig, TrainingConfig
from orchestrator.errors import ModelError

SEQUENCE = ("resnet1d", "inception", "cnn1d", "rnn", "lstm", "gru", "transformer")
SHAPES = {"fnn": (12,), "cnn": (1, 8, 8), **{f: (6, 3) for f in SEQUENCE}}
SMALL = dict(
    hidden_sizes=[32],
    head_sizes=[16],
    channels=[8, 16],
    hidden_size=16,
    d_model=16,
    num_heads=2,
    dim_feedforward=32,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models run fastest on one thread; on a busy 2-core machine 2 threads were ~10× slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def spec(family: str, **kw) -> ModelConfig:
    return ModelConfig(family=family, **{**SMALL, **kw})


def toy_classification(family: str, n: int = 200, seed: int = 0) -> TensorData:
    """Two classes separable by the sign of a few inputs (over valid steps for sequences)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *SHAPES[family], generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    sign = (2 * y - 1).float()
    lengths = None
    if family == "fnn":
        x[:, :3] += 1.5 * sign[:, None]
    elif family == "cnn":
        x[:, :, :4, :] += 1.5 * sign[:, None, None, None]
    else:
        x[:, :, 0] += 1.5 * sign[:, None]
        lengths = torch.randint(3, 7, (n,), generator=g)
        x[torch.arange(6)[None, :] >= lengths[:, None]] = 0.0
    return TensorData(x, y, lengths)


@pytest.mark.parametrize("family", list(FAMILIES), ids=list(FAMILIES))
def test_forward_shape(family: str) -> None:
    seed_everything(0)
    model = build_model(spec(family), SHAPES[family], 3)
    x = torch.randn(5, *SHAPES[family])
    model.eval()
    assert model(x).shape == (5, 3)
    if family in SEQUENCE:
        assert model(x, torch.tensor([6, 1, 3, 4, 2])).shape == (5, 3)


@pytest.mark.parametrize("family", list(FAMILIES), ids=list(FAMILIES))
def test_trains_above_chance(family: str) -> None:
    seed_everything(0)
    train, test = toy_classification(family, seed=0), toy_classification(family, seed=1)
    model = build_model(spec(family), SHAPES[family], 2)
    cfg = TrainingConfig(epochs=8, batch_size=32, optimizer={"lr": 3e-3}, device="cpu")
    trainer = Trainer(model, cfg, "classification", train, None, seed=0)
    history = trainer.fit()
    assert len(history) == 8 and trainer.stopped
    proba = trainer.predict(test.x, test.lengths)
    assert compute_metrics("classification", test.y.numpy(), proba)["accuracy"] > 0.75


# cnn1d pools by 2 per block and a 'valid' conv shortens the sequence, so a sequence run alone
# matches its padded run only when it is long enough for every block (min_len below).
VARIANTS = [
    ("resnet1d", {}),
    ("resnet1d", {"channels": [8, 8]}),
    ("inception", {"depth": 3, "filters": 8}),
    ("inception", {"depth": 6, "filters": 4, "max_kernel": 9}),
    ("cnn1d", {}),
    ("cnn1d", {"padding": "valid", "pool": "avg", "channels": [8]}),
    ("cnn1d", {"pool": "none", "kernel_size": 5}),
    ("rnn", {}),
    ("lstm", {"num_layers": 2, "bidirectional": True}),
    ("gru", {"bidirectional": True}),
    ("transformer", {"num_layers": 2}),
    ("transformer", {"positional": "learned"}),
]


@pytest.mark.parametrize(
    "family,extra", VARIANTS, ids=[f"{f}-{'-'.join(e) or 'default'}" for f, e in VARIANTS]
)
def test_padding_is_ignored(family: str, extra: dict) -> None:
    seed_everything(0)
    model = build_model(spec(family, **extra), (6, 3), 4).eval()
    min_len = {"none": 1, "same": 4, "valid": 4}[model_padding(family, extra)]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 6, 3, generator=g)
    lengths = torch.tensor([6, 2, 4, 5, 3])
    pad = torch.arange(6)[None, :] >= lengths[:, None]  # (batch, time)
    clean = x.masked_fill(pad[..., None], 0.0)
    garbage = torch.where(pad[..., None], 1e3 * torch.randn(5, 6, 3, generator=g), x)
    with torch.no_grad():
        out = model(clean, lengths)
        torch.testing.assert_close(model(garbage, lengths), out, atol=1e-5, rtol=1e-4)
        for i, n in enumerate(lengths.tolist()):  # each sequence alone, cut to its length
            if n >= min_len:
                alone = model(x[i : i + 1, :n])
                torch.testing.assert_close(alone, out[i : i + 1], atol=1e-5, rtol=1e-4)


def model_padding(family: str, extra: dict) -> str:
    if family != "cnn1d" or extra.get("pool") == "none":
        return "none"
    return extra.get("padding", "same")


def test_cnn_skips_pooling_on_small_images() -> None:
    model = build_model(spec("cnn", channels=[8, 8, 8, 8]), (1, 8, 8), 10).eval()
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    pools = [m for m in model.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 3  # 8 → 4 → 2 → 1, then no pooling


def test_cnn_large_images_are_pooled_before_the_head() -> None:
    model = build_model(spec("cnn", channels=[4]), (3, 64, 48), 2).eval()
    assert model(torch.randn(2, 3, 64, 48)).shape == (2, 2)
    assert model.head.net[0].in_features == 4 * 4 * 4


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh", "sigmoid", "leaky_relu"])
def test_activations(activation: str) -> None:
    for family in ("fnn", "transformer"):
        model = build_model(spec(family, activation=activation), SHAPES[family], 2).eval()
        assert torch.isfinite(model(torch.randn(3, *SHAPES[family]))).all()


def test_default_spec_builds_every_family() -> None:
    for family in FAMILIES:
        model = build_model(ModelConfig(family=family), SHAPES[family], 10).eval()
        assert model(torch.randn(2, *SHAPES[family])).shape == (2, 10)


@pytest.mark.parametrize(
    "family,shape,match",
    [
        ("cnn", (64,), r"model.family 'cnn' needs image input \(C, H, W\), got shape \(64,\)"),
        ("fnn", (1, 8, 8), r"model.family 'fnn' needs table input \(F,\), got shape \(1, 8, 8\)"),
        ("gru", (64,), r"model.family 'gru' needs sequence input \(T, F\), got shape \(64,\)"),
        ("transformer", (8, 0), r"needs sequence input \(T, F\), got shape \(8, 0\)"),
    ],
    ids=["cnn-flat", "fnn-image", "gru-flat", "transformer-empty"],
)
def test_bad_input_shape(family: str, shape: tuple, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        build_model(ModelConfig(family=family), shape, 2)


def test_auto_family_must_be_resolved() -> None:
    with pytest.raises(ModelError, match="'auto' must be resolved.*fnn, cnn, cnn1d"):
        build_model(ModelConfig(), (4,), 2)


def test_unknown_family_lists_options() -> None:
    bad = ModelConfig.model_construct(**{**ModelConfig().model_dump(), "family": "lstn"})
    with pytest.raises(ModelError, match=r"must be one of fnn, .*got 'lstn' \(did you mean 'lstm'"):
        build_model(bad, (6, 3), 2)


def test_kernel_larger_than_image() -> None:
    with pytest.raises(ModelError, match="block 2 leaves no pixels"):
        build_model(spec("cnn", kernel_size=5, padding="valid", pool="none"), (1, 8, 8), 2)


def test_transformer_heads_must_divide_d_model() -> None:
    bad = spec("transformer", d_model=10, num_heads=2).model_copy(update={"num_heads": 3})
    with pytest.raises(
        ModelError, match="d_model must be divisible by model.num_heads, got 10 and 3"
    ):
        build_model(bad, (6, 3), 2)


@pytest.mark.parametrize("family", list(FAMILIES), ids=list(FAMILIES))
def test_models_pickle(family: str) -> None:
    # The predictor ships the network pickled inside the MLflow model.
    model = build_model(spec(family, activation="tanh"), SHAPES[family], 2).eval()
    x = torch.randn(3, *SHAPES[family])
    clone = pickle.loads(pickle.dumps(model))
    torch.testing.assert_close(clone(x), model(x))
