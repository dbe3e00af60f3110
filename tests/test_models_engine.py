"""The training loop: losses, optimizers, schedulers, early stopping, clipping, checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models import TensorData, Trainer, build_model, output_size, seed_everything
from orchestrator.config import ModelConfig, TrainingConfig
from orchestrator.errors import ConfigError, TrainingError

FNN = ModelConfig(family="fnn", hidden_sizes=[16], dropout=0.0, batch_norm=False)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blobs(n: int = 120, seed: int = 0, noise: bool = False) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = torch.randint(0, 2, (n,), generator=g) if noise else (x[:, 0] + x[:, 1] > 0).long()
    return TensorData(x, y)


def regression(n: int = 120, seed: int = 0) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    return TensorData(x, x @ torch.arange(1.0, 6.0) + 0.1 * torch.randn(n, generator=g))


def make(cfg: TrainingConfig, task="classification", train=None, es=None, n_out=2, seed=0, **kw):
    seed_everything(seed)
    model = build_model(kw.pop("spec", FNN), (5,), n_out)
    train = train or (blobs() if task == "classification" else regression())
    return Trainer(model, cfg, task, train, es, seed=seed, device="cpu", **kw)


def test_tensor_data_take() -> None:
    data = TensorData(torch.arange(10.0)[:, None], torch.arange(10), torch.arange(10))
    part = data.take(torch.tensor([3, 1]))
    assert len(data) == 10 and len(part) == 2
    assert part.x[:, 0].tolist() == [3.0, 1.0] and part.lengths.tolist() == [3, 1]


@pytest.mark.parametrize(
    "task,n_classes,loss,expected",
    [
        ("classification", 3, "auto", 3),
        ("classification", 2, "cross_entropy", 2),
        ("classification", 2, "bce", 1),
        ("regression", None, "auto", 1),
        ("regression", None, "huber", 1),
    ],
)
def test_output_size(task, n_classes, loss, expected) -> None:
    assert output_size(task, n_classes, loss) == expected


def test_output_size_rejects_bad_losses() -> None:
    with pytest.raises(ConfigError, match="'bce' needs a binary target, got 3 classes"):
        output_size("classification", 3, "bce")
    with pytest.raises(ConfigError, match="'cross_entropy' does not fit a regression.*mse, huber"):
        output_size("regression", None, "cross_entropy")


def test_loss_must_fit_the_task() -> None:
    with pytest.raises(ConfigError, match="'mse' does not fit a classification task; allowed: "):
        make(TrainingConfig(loss="mse"))


def test_same_seed_same_metrics() -> None:
    cfg = TrainingConfig(epochs=3, batch_size=16)
    spec = FNN.model_copy(update={"dropout": 0.2, "batch_norm": True})
    # Dropout draws from the global seed, so each trainer is built and run before the next.
    histories = [make(cfg, es=blobs(seed=1), spec=spec).fit() for _ in range(2)]
    assert histories[0] == histories[1]
    other = make(cfg, es=blobs(seed=1), spec=spec, seed=5).fit()
    assert other != histories[0]


def test_epoch_metrics() -> None:
    trainer = make(TrainingConfig(epochs=2, batch_size=32), es=blobs(seed=1))
    m = trainer.train_epoch()
    assert set(m) == {"epoch", "train_loss", "es_loss", "grad_norm", "lr"} and m["epoch"] == 1
    assert "es_loss" not in make(TrainingConfig(epochs=2)).train_epoch()


def test_classification_learns_and_predicts_probabilities() -> None:
    trainer = make(TrainingConfig(epochs=15, batch_size=16, optimizer={"lr": 1e-2}))
    history = trainer.fit()
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    test = blobs(seed=2)
    proba = trainer.predict(test.x.numpy())
    assert proba.shape == (120, 2) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert (proba.argmax(1) == test.y.numpy()).mean() > 0.9


def test_bce_gives_two_column_probabilities() -> None:
    cfg = TrainingConfig(loss="bce", epochs=15, batch_size=16, optimizer={"lr": 1e-2})
    trainer = make(cfg, n_out=1)
    trainer.fit()
    test = blobs(seed=2)
    proba = trainer.predict(test.x)
    assert proba.shape == (120, 2) and np.allclose(proba.sum(1), 1)
    assert (proba.argmax(1) == test.y.numpy()).mean() > 0.9


def test_bce_needs_one_output() -> None:
    with pytest.raises(ConfigError, match="'bce' needs a binary target and a model with 1 output"):
        make(TrainingConfig(loss="bce"), n_out=2)


@pytest.mark.parametrize("loss", ["auto", "mse", "huber"])
def test_regression_predicts_values(loss: str) -> None:
    cfg = TrainingConfig(loss=loss, epochs=30, batch_size=16, optimizer={"lr": 1e-2})
    trainer = make(cfg, task="regression", n_out=1)
    history = trainer.fit()
    assert history[-1]["train_loss"] < 0.3 * history[0]["train_loss"]
    pred = trainer.predict(regression(seed=3).x)
    assert pred.shape == (120,) and pred.dtype == np.float32


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_optimizers(name: str) -> None:
    opt = {"name": name, "lr": 1e-2, "weight_decay": 1e-4, "nesterov": name == "sgd"}
    history = make(TrainingConfig(epochs=5, batch_size=16, optimizer=opt)).fit()
    assert history[-1]["train_loss"] < history[0]["train_loss"]


@pytest.mark.parametrize("name", ["none", "step", "cosine", "plateau", "onecycle"])
def test_schedulers(name: str) -> None:
    sched = {"name": name, "step_size": 1, "gamma": 0.5, "min_lr": 1e-4, "patience": 0}
    cfg = TrainingConfig(epochs=4, batch_size=16, optimizer={"lr": 0.1}, scheduler=sched)
    lrs = [m["lr"] for m in make(cfg).fit()]
    if name == "none":
        assert lrs == [0.1] * 4
    elif name == "step":
        assert lrs == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    elif name == "cosine":
        assert lrs[0] == 0.1 and lrs[-1] < lrs[0]
    elif name == "onecycle":
        assert lrs[-1] < 1e-3 < lrs[0]  # anneals to max_lr / 1e4 by the last batch
    else:
        assert len(lrs) == 4 and lrs[-1] <= 0.1


def test_augment_sees_training_batches_only() -> None:
    calls = []

    def augment(x: torch.Tensor, g: torch.Generator, lengths=None) -> torch.Tensor:
        calls.append(len(x))
        return x + 0.01 * torch.randn(x.shape, generator=g)

    cfg = TrainingConfig(epochs=1, batch_size=50)
    trainer = make(cfg, train=blobs(n=120), es=blobs(seed=1), augment=augment)
    trainer.train_epoch()
    trainer.predict(blobs(seed=2).x)
    assert calls == [50, 50, 20]
    # A last batch of one sample (which BatchNorm cannot train on) joins the one before it.
    calls.clear()
    make(cfg, train=blobs(n=101), augment=augment).train_epoch()
    assert calls == [50, 51]


def test_early_stopping_restores_best_weights() -> None:
    cfg = TrainingConfig(
        epochs=60, batch_size=16, optimizer={"lr": 1e-2}, early_stopping={"patience": 3}
    )
    spec = FNN.model_copy(update={"hidden_sizes": [64]})
    es = blobs(n=60, seed=1, noise=True)
    trainer = make(cfg, train=blobs(n=60, noise=True), es=es, spec=spec)
    history = trainer.fit()
    assert trainer.stopped and len(history) < 60
    assert len(history) == trainer.best_epoch + 3
    best = history[trainer.best_epoch - 1]["es_loss"]
    assert best == min(m["es_loss"] for m in history)
    assert trainer.evaluate_loss(es) == pytest.approx(best, rel=1e-6)
    assert not trainer.model.training


def test_gradient_clipping_caps_the_step() -> None:
    cfg = TrainingConfig(
        epochs=1,
        batch_size=1000,
        grad_clip=0.01,
        optimizer={"name": "sgd", "lr": 1.0, "momentum": 0},
    )
    trainer = make(cfg)
    before = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])
    metrics = trainer.train_epoch()
    after = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    assert metrics["grad_norm"] > 0.01  # recorded before clipping
    assert (after - before).norm() == pytest.approx(0.01, rel=1e-4)


def test_checkpoint_written_and_resumed(tmp_path) -> None:
    cfg = TrainingConfig(
        epochs=3, batch_size=16, checkpoint_dir=str(tmp_path), scheduler={"name": "cosine"}
    )
    uninterrupted = make(cfg, es=blobs(seed=1)).fit()
    first = make(cfg, es=blobs(seed=1))
    first.train_epoch(), first.train_epoch()
    path = tmp_path / "checkpoint.pt"
    assert path.is_file() and list(tmp_path.iterdir()) == [path]
    assert set(torch.load(path, weights_only=False)) >= {
        "epoch",
        "model",
        "optimizer",
        "scheduler",
        "best_epoch",
    }
    resumed = make(cfg, es=blobs(seed=1), seed=0)
    assert resumed.load_checkpoint(path) == 2
    assert resumed.train_epoch() == uninterrupted[2]
    with pytest.raises(TrainingError, match="checkpoint not found"):
        resumed.load_checkpoint(tmp_path / "missing.pt")


def test_diverging_loss_raises() -> None:
    cfg = TrainingConfig(
        epochs=20, batch_size=16, grad_clip=None, optimizer={"name": "sgd", "lr": 1e6}
    )
    trainer = make(cfg, task="regression", n_out=1)
    with pytest.raises(TrainingError, match=r"loss diverged to (nan|inf) at epoch \d+; lower"):
        trainer.fit()


def test_cuda_requested_without_cuda() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    seed_everything(0)
    with pytest.raises(ConfigError, match="no CUDA device"):
        Trainer(
            build_model(FNN, (5,), 2),
            TrainingConfig(device="cuda"),
            "classification",
            blobs(),
            None,
            seed=0,
        )


def test_grad_norm_without_clipping() -> None:
    m = make(TrainingConfig(epochs=1, grad_clip=None)).train_epoch()
    assert math.isfinite(m["grad_norm"]) and m["grad_norm"] > 0


@pytest.mark.parametrize(
    "task,loss,n_out",
    [("classification", "auto", 2), ("classification", "bce", 1), ("regression", "mse", 1)],
    ids=["cross-entropy", "bce", "mse"],
)
def test_predict_with_loss_is_predict_and_evaluate_loss_in_one_pass(task, loss, n_out) -> None:
    cfg = TrainingConfig(loss=loss, epochs=2, batch_size=16, optimizer={"lr": 1e-2})
    trainer = make(cfg, task=task, n_out=n_out)
    trainer.fit()
    held_out = blobs(n=2500, seed=4) if task == "classification" else regression(n=2500, seed=4)
    trainer.model.train()  # the call must not leave the model in eval mode
    output, loss_value = trainer.predict_with_loss(held_out)  # 2500 rows: three eval batches
    assert trainer.model.training
    np.testing.assert_allclose(output, trainer.predict(held_out.x), rtol=1e-6, atol=1e-7)
    assert loss_value == pytest.approx(trainer.evaluate_loss(held_out), rel=1e-5)
    assert output.shape == ((2500, 2) if task == "classification" else (2500,))
