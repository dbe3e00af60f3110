"""Mixed precision (``training.precision``) and the host-to-device path, on the CPU: torch's CPU
autocast runs bf16 and fp16, so the logic a GPU takes (autocast, fp16's loss scaler, bf16 in
the stacked folds) is tested here; the GPU's own speed is measured by benchmarks/gpu_check.sh."""

from __future__ import annotations

import pytest
import torch

from models import FusedTrainer, Trainer, build_model, fusion_blocker, seed_everything
from models.tensordata import amp_dtype
from orchestrator.config import TrainingConfig
from orchestrator.errors import ConfigError
from orchestrator.pipeline import run_training
from tests.conftest import tiny_config
from tests.test_fused import FNN, SIZES, blobs, fold_trainers

CPU = torch.device("cpu")


def test_auto_is_full_precision_on_the_cpu_and_the_names_map_to_dtypes():
    assert amp_dtype("auto", CPU) is None
    assert amp_dtype("fp32", CPU) is None
    assert amp_dtype("bf16", CPU) is torch.bfloat16
    assert amp_dtype("fp16", CPU) is torch.float16
    with pytest.raises(ConfigError, match="auto, fp32, bf16, fp16"):
        amp_dtype("fp8", CPU)


def trainer(precision: str, epochs: int = 30) -> Trainer:
    cfg = TrainingConfig(
        epochs=epochs, batch_size=32, precision=precision, scheduler={"name": "none"}
    )
    seed_everything(0)
    model = build_model(FNN, (5,), 3)
    return Trainer(model, cfg, "classification", blobs(200, 0), blobs(60, 1), device="cpu")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_in_its_dtype_and_keeps_fp32_weights(precision):
    t = trainer(precision)
    seen: set[torch.dtype] = set()
    linear = next(m for m in t.model.modules() if isinstance(m, torch.nn.Linear))
    hook = linear.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
    first = t.train_epoch()
    hook.remove()
    assert seen == {amp_dtype(precision, CPU)}  # the forward pass ran under autocast
    assert (t.scaler is not None) == (precision == "fp16")
    history = [first] + [t.train_epoch() for _ in range(15)]
    assert all(p.dtype == torch.float32 for p in t.model.parameters())
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    # it learns as fp32 does: the same blobs, the same seed
    reference = trainer("fp32")
    ref = [reference.train_epoch() for _ in range(16)]
    accuracy = (t.predict(blobs(200, 2).x).argmax(1) == blobs(200, 2).y.numpy()).mean()
    ref_acc = (reference.predict(blobs(200, 2).x).argmax(1) == blobs(200, 2).y.numpy()).mean()
    assert accuracy >= ref_acc - 0.05 and ref[-1]["train_loss"] > 0


def test_bf16_folds_are_stacked_and_fp16_folds_are_not():
    cfg = TrainingConfig(epochs=3, batch_size=32, precision="bf16", scheduler={"name": "none"})
    folds = fold_trainers(cfg, sizes=SIZES)
    assert fusion_blocker(folds) is None
    engine = FusedTrainer(folds)
    assert not engine.manual  # bf16 gradients go through autograd, not the fp32 hand-written path
    histories = engine.fit()
    assert all(
        len(h) == 3 and all(torch.isfinite(torch.tensor(e["train_loss"])) for e in h)
        for h in histories
    )
    fp16 = fold_trainers(cfg.model_copy(update={"precision": "fp16"}), sizes=SIZES)
    assert fusion_blocker(fp16) == "fp16 scales each fold's loss on its own"


def test_a_training_run_takes_the_precision_from_the_config():
    result = run_training(tiny_config(**{"training.precision": "bf16", "training.epochs": 6}))
    assert result.config.training.precision == "bf16"
    assert 0.0 <= result.test_metrics["accuracy"] <= 1.0
    with pytest.raises(Exception, match="precision"):
        tiny_config(**{"training.precision": "half"})


def test_moving_data_to_the_cpu_copies_nothing():
    data = blobs(10, 0)
    moved = data.to("cpu")
    assert moved.x.data_ptr() == data.x.data_ptr() and moved.y.data_ptr() == data.y.data_ptr()
