"""The training loop: ``Trainer`` (losses, optimizers, schedulers, early stopping, checkpoints).

Batches are taken by slicing tensors with a seeded permutation; a DataLoader over in-memory tensors
was measured ~50% slower on these models (FACTS.md).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.inference import EVAL_BATCH, as_tensor, predict, to_predictions
from models.lazy_dynamo import defer_dynamo_import
from models.losses import loss_value, resolve_loss
from models.tensordata import TensorData, amp_dtype, crop_padding, resolve_device
from orchestrator.autoconfig import resolve_training
from orchestrator.errors import ConfigError, TrainingError

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULERS = ("none", "step", "cosine", "plateau", "onecycle")

# torch.optim imports torch._dynamo (~2.5 s) with the first optimizer; fused folds never need it
defer_dynamo_import()


class Trainer:
    """Trains ``model`` one epoch at a time; see ``train_epoch``, ``finish`` and ``predict``.

    The batch order and the ``augment`` randomness come from generators seeded by ``seed``; the
    model's initial weights and dropout masks come from the global torch seed set by the caller.
    """

    def __init__(
        self,
        model: nn.Module,
        training_cfg: Any,
        task: str,
        train: TensorData,
        early_stop: TensorData | None = None,
        seed: int = 0,
        augment: Callable[..., torch.Tensor] | None = None,
        device: str | None = None,
    ) -> None:
        # "auto" settings are decided per run from the data (orchestrator.autoconfig.resolve_auto);
        # a Trainer built directly decides them from its own training data
        modality = {2: "table", 3: "sequence", 4: "image"}.get(len(train.x.shape), "table")
        self.cfg = resolve_training(training_cfg, modality, len(train))
        training_cfg = self.cfg
        self.task = task
        self.loss_name = resolve_loss(task, training_cfg.loss)
        self.device = resolve_device(device or training_cfg.device)
        # mixed precision (training.precision): autocast's dtype, and fp16's loss scaler
        self.amp_dtype = amp_dtype(training_cfg.precision, self.device)
        self.scaler = (
            torch.amp.GradScaler(self.device.type) if self.amp_dtype == torch.float16 else None
        )
        self.model = model.to(self.device)
        self.train_data = self._prepare(train).to(self.device)
        self.es_data = None if early_stop is None else self._prepare(early_stop).to(self.device)
        if len(self.train_data) == 0:
            raise TrainingError("the training set is empty")
        norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
        if len(self.train_data) == 1 and any(isinstance(m, norms) for m in model.modules()):
            raise TrainingError(
                "a model trains on 1 row, and batch normalisation needs at least 2: give more "
                "rows, fewer folds, or set model.batch_norm=false"
            )
        self.augment = augment
        self.generator = torch.Generator().manual_seed(seed)
        self.augment_generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.n_outputs = self._probe_outputs()
        self._check_targets()

        self.optimizer = self._make_optimizer()
        self.scheduler = self._make_scheduler()
        self.epoch = 0
        self.best_epoch = 0
        self.best_loss = math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0
        self.stopped = False

    # ------------------------------------------------------------------ set-up
    def _prepare(self, data: TensorData) -> TensorData:
        y_dtype = torch.long if self.task == "classification" else torch.float32
        lengths = None if data.lengths is None else as_tensor(data.lengths, torch.long)
        return TensorData(as_tensor(data.x, torch.float32), as_tensor(data.y, y_dtype), lengths)

    def _probe_outputs(self) -> int:
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            probe = self.train_data.take(torch.arange(min(2, len(self.train_data))))
            out = self.model(probe.x, probe.lengths)
        self.model.train(was_training)
        return int(out.shape[-1])

    def _check_targets(self) -> None:
        if self.task == "regression" and self.n_outputs != 1:
            raise ConfigError(f"regression needs a model with 1 output, got {self.n_outputs}")
        if self.task != "classification":
            return
        top = int(self.train_data.y.max())
        if self.loss_name == "bce" and (self.n_outputs != 1 or top > 1):
            raise ConfigError(
                "training.loss 'bce' needs a binary target and a model with 1 output, got "
                f"{top + 1} classes and {self.n_outputs} outputs; use 'cross_entropy'"
            )
        if self.loss_name == "cross_entropy" and top >= self.n_outputs:
            raise ConfigError(
                f"the target has class index {top} but the model has {self.n_outputs} outputs"
            )

    def _make_optimizer(self) -> torch.optim.Optimizer:
        opt = self.cfg.optimizer
        params = self.model.parameters()
        if opt.name == "sgd":
            if opt.nesterov and opt.momentum == 0:
                raise ConfigError("training.optimizer.nesterov needs momentum > 0, got 0")
            return torch.optim.SGD(
                params,
                lr=opt.lr,
                momentum=opt.momentum,
                nesterov=opt.nesterov,
                weight_decay=opt.weight_decay,
            )
        if opt.name == "adam":
            return torch.optim.Adam(params, lr=opt.lr, weight_decay=opt.weight_decay)
        if opt.name == "adamw":
            return torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay)
        if opt.name == "rmsprop":
            return torch.optim.RMSprop(params, lr=opt.lr, weight_decay=opt.weight_decay)
        raise ConfigError(
            f"training.optimizer.name must be one of {', '.join(OPTIMIZERS)}, got {opt.name!r}"
        )

    def _n_batches(self) -> int:
        return len(self._batch_bounds(len(self.train_data)))

    def _batch_bounds(self, n: int) -> list[tuple[int, int]]:
        size = self.cfg.batch_size
        bounds = [(i, min(i + size, n)) for i in range(0, n, size)]
        # A last batch of one sample breaks BatchNorm in training mode: fold it into the previous.
        if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
            bounds[-2:] = [(bounds[-2][0], n)]
        return bounds

    def _make_scheduler(self) -> Any:
        sch, opt = self.cfg.scheduler, self.optimizer
        if sch.name == "none":
            return None
        if sch.name == "step":
            return torch.optim.lr_scheduler.StepLR(opt, step_size=sch.step_size, gamma=sch.gamma)
        if sch.name == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, T_max=self.cfg.epochs, eta_min=sch.min_lr
            )
        if sch.name == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode="min", factor=sch.factor, patience=sch.patience, min_lr=sch.min_lr
            )
        if sch.name == "onecycle":
            return torch.optim.lr_scheduler.OneCycleLR(
                opt,
                max_lr=self.cfg.optimizer.lr,
                epochs=self.cfg.epochs,
                steps_per_epoch=self._n_batches(),
            )
        raise ConfigError(
            f"training.scheduler.name must be one of {', '.join(SCHEDULERS)}, got {sch.name!r}"
        )

    def autocast(self) -> Any:
        """Autocast to ``training.precision``'s dtype (a no-op context in fp32)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # ------------------------------------------------------------------ loss
    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_value(self.loss_name, out, y)

    def _eval_pass(self, data: TensorData) -> tuple[torch.Tensor, float]:
        """Raw outputs and mean loss over ``data`` in eval mode (no dropout, BatchNorm running
        statistics), batch by batch without gradients."""
        was_training = self.model.training
        self.model.eval()
        outs = []
        data = data.to(self.device)  # once, pinned, rather than batch by batch
        with torch.no_grad(), self.autocast():
            for start in range(0, len(data), EVAL_BATCH):
                stop = start + EVAL_BATCH
                lengths = None if data.lengths is None else data.lengths[start:stop]
                x = crop_padding(data.x[start:stop], lengths)
                outs.append(self.model(x, lengths).float())
        with torch.no_grad():
            out = torch.cat(outs) if outs else torch.zeros(0, self.n_outputs)
            loss = float(self._loss(out, data.y.to(self.device))) if outs else 0.0
        self.model.train(was_training)
        return out, loss

    def predict_with_loss(self, data: TensorData) -> tuple[np.ndarray, float]:
        """Predictions (as :meth:`predict`) and the mean loss over ``data``, from one pass."""
        out, loss = self._eval_pass(data)
        return to_predictions(out.float().cpu(), self.task), loss

    def evaluate_loss(self, data: TensorData) -> float:
        """Mean loss over ``data`` in eval mode (no dropout, BatchNorm running statistics)."""
        return self._eval_pass(data)[1]

    # ------------------------------------------------------------------ training
    def train_epoch(self) -> dict[str, float]:
        """Train one epoch; returns ``epoch``, ``train_loss``, ``es_loss``, ``grad_norm``, ``lr``.

        ``es_loss`` is absent when there is no early-stopping set.
        """
        self.epoch += 1
        self.model.train()
        data, clip = self.train_data, self.cfg.grad_clip
        order = torch.randperm(len(data), generator=self.generator).to(self.device)
        loss_sum = torch.zeros((), device=self.device)
        norm_sum = torch.zeros((), device=self.device)
        bounds = self._batch_bounds(len(data))
        for start, stop in bounds:
            batch = data.take(order[start:stop])
            x = batch.x
            if self.augment is not None:
                x = self.augment(x, self.augment_generator, batch.lengths)
            self.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                out = self.model(x, batch.lengths)
            loss = self._loss(out.float(), batch.y)
            if self.scaler is not None:  # fp16: scaled loss, gradients unscaled before clipping
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                loss.backward()
            if clip is not None:
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            else:
                grads = [p.grad for p in self.model.parameters() if p.grad is not None]
                norm = torch.nn.utils.get_total_norm(grads)
            if self.scaler is not None:  # skips the step where the gradients overflowed
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            if isinstance(self.scheduler, torch.optim.lr_scheduler.OneCycleLR):
                if self.scheduler.last_epoch < self.scheduler.total_steps:
                    self.scheduler.step()
            loss_sum += loss.detach() * (stop - start)
            norm_sum += norm.detach()
        return self.record_epoch(float(loss_sum) / len(data), float(norm_sum) / len(bounds))

    def record_epoch(self, train_loss: float, grad_norm: float) -> dict[str, float]:
        """Close epoch ``self.epoch`` after its batches ran (here or in ``models.fused``).

        Checks for divergence, measures ``es_loss``, steps the epoch scheduler, tracks the best
        weights and early stopping, writes the checkpoint; returns the epoch's metrics.
        """
        if not math.isfinite(train_loss):
            raise TrainingError(
                f"loss diverged to {train_loss} at epoch {self.epoch}; lower "
                f"training.optimizer.lr (now {self.cfg.optimizer.lr:g}), set training.grad_clip "
                "or check the data for extreme values"
            )
        metrics = {
            "epoch": self.epoch,
            "train_loss": train_loss,
            "grad_norm": grad_norm,
            "lr": float(self.optimizer.param_groups[0]["lr"]),
        }
        if self.es_data is not None:
            metrics["es_loss"] = self.evaluate_loss(self.es_data)
        self._step_scheduler(metrics)
        self._track_best(metrics)
        if self.cfg.checkpoint_dir:
            self.save_checkpoint(Path(self.cfg.checkpoint_dir) / "checkpoint.pt")
        return metrics

    def _step_scheduler(self, metrics: dict[str, float]) -> None:
        if self.scheduler is None or isinstance(
            self.scheduler, torch.optim.lr_scheduler.OneCycleLR
        ):
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(metrics.get("es_loss", metrics["train_loss"]))
        else:
            self.scheduler.step()

    def _track_best(self, metrics: dict[str, float]) -> None:
        es = self.cfg.early_stopping
        if self.es_data is None or not es.enabled:
            self.best_epoch = self.epoch
        elif metrics["es_loss"] < self.best_loss - es.min_delta:
            self.best_loss = metrics["es_loss"]
            self.best_epoch = self.epoch
            self.bad_epochs = 0
            if es.restore_best:
                self.best_state = {
                    k: v.detach().clone() for k, v in self.model.state_dict().items()
                }
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= es.patience:
                self.stopped = True
        if self.epoch >= self.cfg.epochs:
            self.stopped = True

    def fit(self) -> list[dict[str, float]]:
        """Train until ``stopped``, then ``finish()``; returns the per-epoch metrics."""
        history = []
        while not self.stopped:
            history.append(self.train_epoch())
        self.finish()
        return history

    def finish(self) -> nn.Module:
        """Restore the best weights (when early stopping kept them); put the model in eval mode."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        return self.model

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | Path) -> None:
        """Write the training state atomically (temp file in the same folder, then os.replace)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "best_epoch": self.best_epoch,
            "best_loss": self.best_loss,
            "best_state": self.best_state,
            "bad_epochs": self.bad_epochs,
            "stopped": self.stopped,
            "generator": self.generator.get_state(),
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".checkpoint-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(state, fh)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_checkpoint(self, path: str | Path) -> int:
        """Resume from a checkpoint written by ``save_checkpoint``; returns its epoch."""
        path = Path(path)
        if not path.is_file():
            raise TrainingError(f"checkpoint not found: {path}")
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.best_epoch = int(state["best_epoch"])
        self.best_loss = float(state.get("best_loss", math.inf))
        self.best_state = state.get("best_state")
        self.bad_epochs = int(state.get("bad_epochs", 0))
        self.stopped = bool(state.get("stopped", False))
        if state.get("generator") is not None:
            self.generator.set_state(state["generator"].cpu())
        return self.epoch

    # ------------------------------------------------------------------ inference
    def predict(
        self, x: Any, lengths: Any | None = None, batch_size: int = EVAL_BATCH
    ) -> np.ndarray:
        """Probabilities ``(N, K)`` for classification (bce: ``[1 - p, p]``), values ``(N,)``."""
        return predict(self.model, self.task, x, lengths, batch_size, self.device)
