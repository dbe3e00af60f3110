"""Fold fusion: k fold models trained as one stacked model behave like k separate trainers."""

from __future__ import annotations

import warnings

import pytest
import torch

from models import FusedTrainer, TensorData, Trainer, build_model, fusion_blocker, seed_everything
from models.dense import dense_losses, manual_step
from orchestrator.config import ModelConfig, TrainingConfig
from orchestrator.crossval import cross_validate
from orchestrator.errors import TrainingError
from orchestrator.pipeline import prepare_run
from tests.conftest import tiny_config

FNN = ModelConfig(
    family="fnn", hidden_sizes=[16, 8], dropout=0.0, batch_norm=False, linear_skip=False
)
# 97 rows give 3 batches of 32 (a last batch of one joins the one before), 98 and 130 give 4 and
# 5: folds of different sizes, ragged last batches and different batch counts per epoch
SIZES = (97, 98, 130)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blobs(n: int, seed: int, noise: bool = False) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = torch.randint(0, 3, (n,), generator=g) if noise else (x[:, 0] + x[:, 1] > 0).long()
    return TensorData(x, y)


def fold_trainers(cfg, spec=FNN, sizes=SIZES, noise=False, same=False, shape=(5,), data=blobs):
    """One trainer per fold, each with its own seed, init, rows and early-stopping rows."""
    out = []
    for i, n in enumerate(sizes):
        fold = 0 if same else i
        seed_everything(10 + fold)
        model = build_model(spec, shape, 3)
        train, es = data(n, fold, noise), data(40, 100 + fold, noise)
        out.append(Trainer(model, cfg, "classification", train, es, seed=fold, device="cpu"))
    return out


def assert_same_histories(sequential, fused, rel=1e-3) -> None:
    assert [len(h) for h in fused] == [len(h) for h in sequential]
    for seq_fold, fused_fold in zip(sequential, fused, strict=True):
        for a, b in zip(seq_fold, fused_fold, strict=True):
            assert a.keys() == b.keys()
            assert b == pytest.approx(a, rel=rel, abs=1e-5)


@pytest.mark.parametrize(
    "optimizer,scheduler",
    [
        ({"name": "adam"}, {"name": "none"}),
        ({"name": "adamw", "weight_decay": 1e-2}, {"name": "cosine"}),
        (
            {"name": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
            {"name": "step"},
        ),
        ({"name": "rmsprop"}, {"name": "onecycle"}),
        ({"name": "adam", "weight_decay": 1e-3}, {"name": "plateau", "patience": 0}),
    ],
    ids=["adam", "adamw-cosine", "sgd-nesterov-step", "rmsprop-onecycle", "adam-plateau"],
)
def test_fused_matches_sequential(optimizer, scheduler) -> None:
    cfg = TrainingConfig(
        epochs=8,
        batch_size=32,
        grad_clip=0.5,
        optimizer={"lr": 1e-2, **optimizer},
        scheduler={"step_size": 2, **scheduler},
    )
    sequential = fold_trainers(cfg)
    histories = [t.fit() for t in sequential]
    engine = FusedTrainer(fold_trainers(cfg))
    fused = engine.fit()
    assert_same_histories(histories, fused)
    # each fold's grad-norm is its own, recorded before clipping
    assert len({h[0]["grad_norm"] for h in fused}) == len(SIZES)
    x = blobs(20, 7).x
    for fold, t in enumerate(sequential):
        assert engine.predict(fold, x) == pytest.approx(t.predict(x), abs=1e-4)


def test_batch_norm_folds_keep_their_own_statistics() -> None:
    cfg = TrainingConfig(epochs=4, batch_size=32, optimizer={"name": "sgd", "lr": 0.05})
    spec = FNN.model_copy(update={"batch_norm": True})
    sequential = fold_trainers(cfg, spec)
    histories = [t.fit() for t in sequential]
    fused = fold_trainers(cfg, spec)
    assert_same_histories(histories, FusedTrainer(fused).fit())
    for a, b in zip(sequential, fused, strict=True):
        for (name, va), vb in zip(
            a.model.state_dict().items(), b.model.state_dict().values(), strict=True
        ):
            assert torch.allclose(va.float(), vb.float(), atol=1e-4), name


def test_early_stopping_is_per_fold() -> None:
    cfg = TrainingConfig(
        epochs=40, batch_size=16, optimizer={"lr": 3e-2}, early_stopping={"patience": 2}
    )
    spec = FNN.model_copy(update={"hidden_sizes": [64]})
    sequential = fold_trainers(cfg, spec, noise=True)
    histories = [t.fit() for t in sequential]
    fused = fold_trainers(cfg, spec, noise=True)
    engine = FusedTrainer(fused)
    frozen: dict[int, dict[str, torch.Tensor]] = {}
    while not engine.stopped:
        for i, metrics in enumerate(engine.train_epoch()):
            if metrics is not None and fused[i].stopped:
                frozen[i] = {k: v.clone() for k, v in fused[i].model.state_dict().items()}
    lengths = [len(h) for h in histories]
    assert len(set(lengths)) > 1 and max(lengths) < 40  # folds stop at different epochs
    assert [t.epoch for t in fused] == lengths
    assert [t.best_epoch for t in fused] == [t.best_epoch for t in sequential]
    for i, state in frozen.items():  # a stopped fold no longer changes
        assert all(torch.equal(v, fused[i].model.state_dict()[k]) for k, v in state.items())
    for t, ref in zip(fused, sequential, strict=True):
        t.finish()
        assert t.evaluate_loss(t.es_data) == pytest.approx(ref.evaluate_loss(ref.es_data), rel=1e-4)


def test_dropout_masks_differ_between_folds() -> None:
    cfg = TrainingConfig(epochs=2, batch_size=32, early_stopping={"enabled": False})
    # identical folds: same init, rows and batch order, so only dropout can tell them apart
    plain = FusedTrainer(fold_trainers(cfg, sizes=(100,) * 3, same=True)).fit()
    assert len({h[-1]["train_loss"] for h in plain}) == 1
    spec = FNN.model_copy(update={"dropout": 0.5, "batch_norm": True})
    dropped = FusedTrainer(fold_trainers(cfg, spec, sizes=(100,) * 3, same=True)).fit()
    assert len({h[-1]["train_loss"] for h in dropped}) == 3


def images(n: int, seed: int, noise: bool = False) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 6, 6, generator=g)
    return TensorData(x, (x[:, 0, :3].mean((1, 2)) > 0).long())


def test_cnn_is_fused_with_vmap() -> None:
    cfg = TrainingConfig(epochs=3, batch_size=32)
    spec = ModelConfig(family="cnn", channels=[4], head_sizes=[8], dropout=0.0, batch_norm=True)
    kw = dict(spec=spec, shape=(1, 6, 6), data=images, sizes=(60, 75))
    sequential = [t.fit() for t in fold_trainers(cfg, **kw)]
    engine = FusedTrainer(fold_trainers(cfg, **kw))
    assert engine.layers is None  # the generic vmap(functional_call) path
    assert_same_histories(sequential, engine.fit())


def test_recurrent_folds_cannot_be_fused() -> None:
    spec = ModelConfig(family="lstm", hidden_size=4, head_sizes=[4])
    seed_everything(0)
    model = build_model(spec, (3, 2), 3)
    data = TensorData(torch.randn(10, 3, 2), torch.randint(0, 3, (10,)))
    trainer = Trainer(model, TrainingConfig(), "classification", data, seed=0, device="cpu")
    assert "no batching rule" in fusion_blocker([trainer])
    with pytest.raises(TrainingError, match="cannot be trained as one stacked model: vmap"):
        FusedTrainer([trainer])


def run_cv(**overrides):
    config = tiny_config(
        **{
            "split.folds": 3,
            "training.epochs": 6,
            "model.dropout": 0.0,
            "model.batch_norm": False,
            "training.early_stopping.enabled": True,
            "training.early_stopping.patience": 2,
            **overrides,
        }
    )
    cv = cross_validate(prepare_run(config).prepared, config)
    return cv, list(cv)


def test_cross_validation_fuses_fnn_folds_and_can_be_switched_off() -> None:
    fused_cv, fused = run_cv()
    off_cv, sequential = run_cv(**{"training.fuse_folds": "off"})
    assert fused_cv.fused is not None and off_cv.fused is None
    assert [r.keys() for r in fused] == [r.keys() for r in sequential]
    for a, b in zip(sequential, fused, strict=True):
        assert b == pytest.approx(a, rel=1e-4, abs=1e-6)
    assert fused_cv.result.best_epochs == off_cv.result.best_epochs
    assert fused_cv.result.oof_output == pytest.approx(off_cv.result.oof_output, abs=1e-4)


def test_auto_leaves_unfused_families_alone() -> None:
    cnn = {"data.source": "builtin:digits", "model.family": "cnn", "model.channels": [4]}
    cnn.update({"model.head_sizes": [8], "split.folds": 2, "training.epochs": 1})
    assert run_cv(**cnn)[0].fused is None
    assert run_cv(**cnn, **{"training.fuse_folds": "on"})[0].fused is not None


def test_a_stack_of_one_trains_like_its_trainer() -> None:
    """The refit trains a single FNN as a stack of one (no torch.optim step): same history."""
    cfg = TrainingConfig(epochs=5, batch_size=32, grad_clip=0.5, optimizer={"lr": 1e-2})
    alone = fold_trainers(cfg, sizes=(97,))[0]
    stacked = fold_trainers(cfg, sizes=(97,))
    assert_same_histories([alone.fit()], FusedTrainer(stacked).fit())
    x = blobs(20, 7).x
    assert stacked[0].predict(x) == pytest.approx(alone.predict(x), abs=1e-4)


@pytest.mark.parametrize("scheduler", ["step", "cosine", "plateau", "onecycle"])
def test_fused_schedulers_do_not_warn(scheduler) -> None:
    """Torch warns when a scheduler steps before its optimizer; fused folds never step it."""
    cfg = TrainingConfig(epochs=3, batch_size=32, scheduler={"name": scheduler, "step_size": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        histories = FusedTrainer(fold_trainers(cfg)).fit()
    assert all(len(h) == 3 for h in histories)


@pytest.mark.parametrize("fuse", ["auto", "off"])
def test_cross_validation_is_freed_without_the_cycle_collector(fuse) -> None:
    """Reused Ray workers never run gc.collect() between trials (orchestrator/trial.py), so a
    finished cross-validation, stacked fold data included, must be freed by reference counting:
    a reference cycle kept ~100 MB per B4 trial alive in each worker."""
    import gc
    import weakref

    overrides = {"training.fuse_folds": fuse, "training.scheduler.name": "cosine"}
    run_cv(**overrides)  # one-time imports (torch._dynamo with the first optimizer step) leave
    gc.collect()  # cycles of their own, which hold the frames of that first run
    gc.disable()
    try:
        cv, _ = run_cv(**overrides)
        refs = [weakref.ref(cv)]
        if fuse == "auto":
            refs += [weakref.ref(cv.fused), weakref.ref(cv.fused.x)]
        refs += [weakref.ref(f.trainer) for f in cv.folds]
        del cv
        assert [r() is None for r in refs] == [True] * len(refs)
    finally:
        gc.enable()


@pytest.mark.parametrize("decoupled", [False, True])
def test_fused_adam_kernel_steps_like_the_per_row_update(decoupled) -> None:
    """When every fold shares the learning rate, beta1 and step count, Adam/AdamW steps in torch's
    fused kernel; its rows stay within float rounding of the per-row update, and a row whose
    learning rate differs sends the step down the per-row path (then exactly equal)."""
    from models.stacked_optim import StackedOptimizer

    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    template = cls([torch.zeros(1, requires_grad=True)], lr=1e-2, weight_decay=0.1)
    g = torch.Generator().manual_seed(0)
    start = torch.randn(3, 50, generator=g)
    grads = [torch.randn(3, 50, generator=g) for _ in range(25)]

    def run(lrs, force_rows):
        flat = start.clone().requires_grad_(True)
        opt = StackedOptimizer(template, {"flat": flat})
        fused_calls = []
        original = opt._fused_adam
        opt._fused_adam = lambda *a: fused_calls.append(1) or original(*a)
        hyper = {"lr": torch.tensor(lrs, dtype=torch.float64), "beta1": torch.full((3,), 0.9)}
        hyper["beta1"] = hyper["beta1"].double()
        rows = torch.arange(3) if force_rows else None
        for grad in grads:
            flat.grad = grad.clone()
            opt.step({"flat": flat}, hyper, rows)
        return flat.detach(), len(fused_calls)

    per_row, calls_rows = run([1e-2] * 3, force_rows=True)  # rows given: never fused
    fused, calls_fused = run([1e-2] * 3, force_rows=False)
    assert calls_rows == 0 and calls_fused == len(grads)
    assert torch.allclose(fused, per_row, atol=1e-6) and not torch.equal(fused, start)
    mixed, _ = run([1e-2, 1e-2, 5e-3], force_rows=False)  # declined: the per-row path
    mixed_rows, _ = run([1e-2, 1e-2, 5e-3], force_rows=True)
    assert torch.equal(mixed, mixed_rows)
    assert torch.equal(mixed[:2], per_row[:2]) and not torch.allclose(mixed[2], per_row[2])


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
def test_hand_written_backward_gives_autograds_gradients(activation) -> None:
    """The fused dense chain's gradients by hand (ReLU, Tanh) equal autograd's up to float
    rounding, with the same fold losses; a chain it does not cover (GELU) keeps autograd."""
    spec = ModelConfig(
        family="fnn",
        hidden_sizes=[16, 8],
        activation=activation,
        dropout=0.0,
        batch_norm=False,
        linear_skip=False,
    )
    cfg = TrainingConfig(optimizer={"name": "adam", "lr": 0.01}, batch_size=32, epochs=2)
    engine = FusedTrainer(fold_trainers(cfg, spec, sizes=(96, 96, 96)))
    assert engine.manual == (activation != "gelu")
    if not engine.manual:
        return
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(3, 32, 5, generator=g), torch.randint(0, 3, (3, 32), generator=g)
    manual, views = engine._manual_grad()  # the flat buffer the step writes into
    manual.fill_(float("nan"))  # every entry must be written
    manual_losses = manual_step(engine.layers, engine.params, x, y, views)
    assert not manual.isnan().any()
    auto_losses = dense_losses(engine.layers, engine.params, engine.buffers, x, y, "cross_entropy")
    auto_losses.sum().backward()
    assert torch.allclose(manual_losses, auto_losses.detach(), atol=1e-6)
    assert manual.abs().sum() > 0
    assert torch.allclose(manual, engine.flat.grad, atol=1e-6, rtol=1e-5)
    engine.train_epoch()  # and a whole epoch through it trains
    assert engine.trainers[0].epoch == 1
