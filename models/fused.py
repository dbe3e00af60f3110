"""Fold fusion: the k fold models of one configuration trained as one stacked model.

Each fold keeps its own :class:`~models.engine.Trainer` (data, seeded batch order, optimizer
hyper-parameters, scheduler, early stopping, best weights); :class:`FusedTrainer` only replaces
the batch loop. The folds' weights are stacked along a leading fold dimension and one
``vmap(functional_call)`` runs every fold's forward and backward pass at once (FACTS.md: 2.1–2.2×
faster than one fold after another for small FNNs on the CPU). Everything that depends on a
fold's own numbers stays per fold: gradient norms and clipping, optimizer step counts, learning
rates and momenta (read from the fold's own optimizer, so ``plateau`` and ``onecycle`` work),
early stopping. A fold that stops is dropped from the stack and never changes again.

With dropout at 0 the folds follow the same trajectories as separate trainers up to float
rounding; dropout masks are drawn per fold (``randomness="different"``) but not from the same
random stream as sequential training.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from models.dense import dense_layers, dense_losses, manual_backward_ok, manual_step
from models.engine import Trainer
from models.stacked_optim import StackedOptimizer, fold_rows
from orchestrator.errors import TrainingError

_ONECYCLE = torch.optim.lr_scheduler.OneCycleLR


def fusion_blocker(trainers: Sequence[Trainer]) -> str | None:
    """Why ``trainers`` cannot be trained as one stacked model, or None when they can."""
    if not trainers:
        return "there are no trainers"
    first = trainers[0]
    shapes = {n: t.shape for n, t in first.model.state_dict().items()}
    for t in trainers:
        if any(isinstance(m, nn.RNNBase) for m in t.model.modules()):
            return "vmap has no batching rule for recurrent layers (nn.RNN/LSTM/GRU)"
        if t.train_data.lengths is not None:
            return "sequence lengths are not stacked"
        if t.cfg.checkpoint_dir:
            return "training.checkpoint_dir writes one checkpoint per trainer"
        if t.scaler is not None:
            return "fp16 scales each fold's loss on its own"
        if t.cfg != first.cfg or t.loss_name != first.loss_name or t.device != first.device:
            return "the folds differ in training settings"
        if (
            type(t.model) is not type(first.model)
            or {n: v.shape for n, v in t.model.state_dict().items()} != shapes
        ):
            return "the folds differ in architecture"
        if t.optimizer.state:
            return "an optimizer already holds state (resumed training)"
        group = t.optimizer.param_groups[0]
        if not isinstance(t.optimizer, torch.optim.SGD | torch.optim.Adam | torch.optim.RMSprop):
            return f"optimizer {type(t.optimizer).__name__} is not stacked"
        if group.get("amsgrad") or group.get("centered") or group.get("maximize"):
            return "amsgrad, centered and maximize are not stacked"
    return None


class FusedTrainer:
    """Train the models of ``trainers`` (same architecture and settings) as one stacked model.

    ``train_epoch()`` returns, per trainer, the metrics that its own ``train_epoch()`` would have
    returned (None for a trainer that had already stopped); each trainer's ``model`` holds its
    fold's current weights after every epoch, so ``predict``, ``evaluate_loss``, ``finish``,
    ``stopped`` and ``best_epoch`` are read from the trainers as usual.
    """

    def __init__(self, trainers: Sequence[Trainer]) -> None:
        reason = fusion_blocker(trainers)
        if reason is not None:
            raise TrainingError(f"these folds cannot be trained as one stacked model: {reason}")
        self.trainers = list(trainers)
        first = self.trainers[0]
        self.device = first.device
        # a weightless copy of the architecture: functional_call swaps the stacked rows in
        self.template = copy.deepcopy(first.model).to("meta")
        self.active = [i for i, t in enumerate(self.trainers) if not t.stopped]
        models = [self.trainers[i].model for i in self.active]
        # every fold's parameters as one row of a flat (k, P) leaf: the optimizer, gradient
        # zeroing and clipping each touch one tensor per step instead of one per parameter
        named = list(first.model.named_parameters())
        self.shapes = {name: tuple(p.shape) for name, p in named}
        self.sizes = [p.numel() for _, p in named]
        self.flat = (
            torch.stack([torch.cat([p.detach().flatten() for p in m.parameters()]) for m in models])
            .clone()
            .requires_grad_(True)
        )
        self.buffers = {
            name: torch.stack([dict(m.named_buffers())[name] for m in models]).clone()
            for name, _ in first.model.named_buffers()
        }
        self.optimizer = StackedOptimizer(first.optimizer, {"flat": self.flat})
        for t in self.trainers:
            # The fold's own optimizer only carries its scheduled hyper-parameters. Torch's
            # schedulers warn unless its step ran; the flag they read is set instead of an empty
            # step, because torch.optim's step imports torch._dynamo (~2.5 s, models/lazy_dynamo.py)
            t.optimizer._opt_called = True
        self._stack_data()
        # An FNN runs hand-batched (baddbmm, per-fold BatchNorm as k·C channels): measured
        # faster than vmap, whose batching rule for linear was ~2× slower than baddbmm here.
        self.layers = dense_layers(first.model)
        # the common case's gradients by hand: epochs ~23% shorter than through autograd's
        # engine for five [128, 128] folds
        # (by hand in fp32 only: under bf16 autocast the gradients go through autograd)
        self.manual = first.amp_dtype is None and manual_backward_ok(self.layers, first.loss_name)
        self._grad_buffer: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = None

    # ------------------------------------------------------------------ set-up
    @property
    def params(self) -> dict[str, torch.Tensor]:
        """Each parameter stacked over the active folds ``(k, *shape)``: views into ``flat``."""
        return self._views(self.flat)

    def _views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        k = flat.shape[0]
        pieces = flat.split(self.sizes, dim=1)
        return {
            name: piece.view(k, *shape)
            for (name, shape), piece in zip(self.shapes.items(), pieces, strict=True)
        }

    def _manual_grad(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A flat gradient buffer shaped like ``flat`` and its per-parameter views, reused from
        step to step (until early stopping drops a fold): the hand-computed gradients are
        written into it, with no concatenation."""
        if self._grad_buffer is None or self._grad_buffer[0].shape != self.flat.shape:
            flat = torch.empty_like(self.flat, requires_grad=False)
            self._grad_buffer = (flat, self._views(flat))
        return self._grad_buffer

    def _stack_data(self) -> None:
        """Pad each active fold's training rows into ``(k, N_max, ...)`` and plan its batches."""
        data = [self.trainers[i].train_data for i in self.active]
        n_max = max(len(d) for d in data)
        x0 = data[0].x
        self.x = torch.zeros((len(data), n_max, *x0.shape[1:]), dtype=x0.dtype, device=self.device)
        self.y = torch.zeros((len(data), n_max), dtype=data[0].y.dtype, device=self.device)
        for row, d in enumerate(data):
            self.x[row, : len(d)] = d.x
            self.y[row, : len(d)] = d.y
        bounds = [
            self.trainers[i]._batch_bounds(len(d)) for i, d in zip(self.active, data, strict=True)
        ]
        self.n_batches = [len(b) for b in bounds]
        # per step, groups of rows with equal batch sizes: (rows, starts, stops)
        self.plan: list[list[tuple[list[int], list[int], list[int]]]] = []
        for step in range(max(self.n_batches)):
            by_size: dict[int, tuple[list[int], list[int], list[int]]] = {}
            for row, b in enumerate(bounds):
                if step < len(b):
                    start, stop = b[step]
                    rows, starts, stops = by_size.setdefault(stop - start, ([], [], []))
                    rows.append(row), starts.append(start), stops.append(stop)
            self.plan.append(list(by_size.values()))

    def _loss_of_folds(self, params, buffers, x, y) -> torch.Tensor:
        """Each fold's mean loss ``(k,)``. (A method rather than a bound method stored on
        ``self``: that would be a reference cycle, and the stacked data would outlive the trial
        until Python's cycle collector happened to run.)"""
        with self.trainers[0].autocast():
            if self.layers is not None:
                return dense_losses(self.layers, params, buffers, x, y, self.trainers[0].loss_name)
            return vmap(self._fold_loss, randomness="different")(params, buffers, x, y)

    def _fold_loss(self, params, buffers, x, y) -> torch.Tensor:
        out = functional_call(self.template, (params, buffers), (x,))  # (batch, n_outputs)
        return self.trainers[0]._loss(out.float(), y)

    # ------------------------------------------------------------------ training
    @property
    def stopped(self) -> bool:
        return all(t.stopped for t in self.trainers)

    def _hyper(self, rows: list[int]) -> dict[str, torch.Tensor]:
        groups = [self.trainers[self.active[r]].optimizer.param_groups[0] for r in rows]

        def vector(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float64)

        hyper = {"lr": vector([g["lr"] for g in groups])}
        if "betas" in groups[0]:
            hyper["beta1"] = vector([g["betas"][0] for g in groups])
        if "momentum" in groups[0]:
            hyper["momentum"] = vector([g["momentum"] for g in groups])
        return hyper

    def _batch(self, orders: torch.Tensor, rows: list[int], starts: list[int], stops: list[int]):
        k = len(self.active)
        if len(rows) == k and len(set(starts)) == 1:
            idx = orders[:, starts[0] : stops[0]]  # (k, batch)
            row_idx = torch.arange(k, device=self.device)
        else:
            idx = torch.stack([orders[r, s:e] for r, s, e in zip(rows, starts, stops, strict=True)])
            row_idx = torch.tensor(rows, device=self.device)
        # rows of the flattened (k·N, ...) stack: index_select is ~3× faster than indexing
        # with a (g, batch) pair of index tensors
        k_all, n = self.x.shape[:2]
        flat = (row_idx[:, None] * n + idx).reshape(-1)
        x = self.x.view(k_all * n, *self.x.shape[2:]).index_select(0, flat)
        y = self.y.view(k_all * n, *self.y.shape[2:]).index_select(0, flat)
        x, y = x.view(*idx.shape, *x.shape[1:]), y.view(*idx.shape, *y.shape[1:])  # (g, batch, ...)
        trainers = [self.trainers[self.active[r]] for r in rows]
        if trainers[0].augment is not None:
            x = torch.stack(
                [t.augment(xr, t.augment_generator) for t, xr in zip(trainers, x, strict=True)]
            )
        return x, y, row_idx

    def train_epoch(self) -> list[dict[str, float] | None]:
        """Train every active fold one epoch; per trainer its epoch metrics, or None if stopped."""
        k, clip = len(self.active), self.trainers[0].cfg.grad_clip
        if k == 0:
            return [None] * len(self.trainers)
        trainers = [self.trainers[i] for i in self.active]
        for t in trainers:
            t.epoch += 1
        self.template.train()
        orders = torch.zeros((k, self.x.shape[1]), dtype=torch.long)
        for row, t in enumerate(trainers):
            n = len(t.train_data)
            orders[row, :n] = torch.randperm(n, generator=t.generator)
        orders = orders.to(self.device)
        loss_sum = torch.zeros(k, device=self.device)
        norm_sum = torch.zeros(k, device=self.device)
        hyper_key, hyper = None, {}
        for groups in self.plan:
            self.flat.grad = None
            views = self.params
            total = torch.zeros((), device=self.device)
            step_rows: list[int] = []
            manual = self.manual and len(groups) == 1 and len(groups[0][0]) == k
            for rows, starts, stops in groups:
                x, y, row_idx = self._batch(orders, rows, starts, stops)
                if manual:
                    grad, grad_views = self._manual_grad()
                    losses = manual_step(self.layers, views, x, y, grad_views)
                    self.flat.grad = grad
                elif len(rows) == k:
                    losses = self._loss_of_folds(views, self.buffers, x, y)
                else:  # a ragged last batch: these rows only, their BatchNorm statistics kept
                    params = {n: p[row_idx] for n, p in views.items()}
                    buffers = {n: b[row_idx] for n, b in self.buffers.items()}
                    losses = self._loss_of_folds(params, buffers, x, y)
                    for n, b in self.buffers.items():
                        b[row_idx] = buffers[n]
                total = total + losses.sum()
                loss_sum.index_add_(0, row_idx, losses.detach() * (stops[0] - starts[0]))
                step_rows += rows
            if not manual:
                total.backward()
            norms = self._clip(clip)
            step_rows.sort()
            everyone = len(step_rows) == k
            key = tuple(
                (g["lr"], g.get("betas"), g.get("momentum"))
                for g in (trainers[r].optimizer.param_groups[0] for r in step_rows)
            )
            if key != hyper_key:
                hyper_key, hyper = key, self._hyper(step_rows)
            rows_t = None if everyone else torch.tensor(step_rows, device=self.device)
            self.optimizer.step({"flat": self.flat}, hyper, rows_t)
            norm_sum += (
                norms if everyone else torch.zeros_like(norms).index_add_(0, rows_t, norms[rows_t])
            )
            for r in step_rows:
                scheduler = trainers[r].scheduler
                if isinstance(scheduler, _ONECYCLE):
                    if scheduler.last_epoch < scheduler.total_steps:
                        scheduler.step()
        self._write_back()
        results: list[dict[str, float] | None] = [None] * len(self.trainers)
        losses, norms = loss_sum.tolist(), norm_sum.tolist()
        for row, (i, t) in enumerate(zip(self.active, trainers, strict=True)):
            results[i] = t.record_epoch(
                losses[row] / len(t.train_data), norms[row] / self.n_batches[row]
            )
        self._drop_stopped()
        return results

    @torch.no_grad()
    def _clip(self, clip: float | None) -> torch.Tensor:
        """Each fold's total gradient norm ``(k,)``; clip each fold's gradient to ``clip``."""
        grad = self.flat.grad  # (k, P)
        norms = torch.linalg.vector_norm(grad, dim=1)  # (k,)
        if clip is not None:
            coef = torch.clamp(clip / (norms + 1e-6), max=1.0)
            grad.mul_(fold_rows(coef, grad))
        return norms

    @torch.no_grad()
    def _write_back(self) -> None:
        """Copy each active fold's stacked row into its trainer's model."""
        views = self.params
        for row, i in enumerate(self.active):
            model = self.trainers[i].model
            for name, p in model.named_parameters():
                p.copy_(views[name][row])
            for name, b in model.named_buffers():
                b.copy_(self.buffers[name][row])

    def _drop_stopped(self) -> None:
        keep = [row for row, i in enumerate(self.active) if not self.trainers[i].stopped]
        if len(keep) == len(self.active) or not keep:
            if not keep:
                self.active = []
            return
        rows = torch.tensor(keep, device=self.device)
        self.active = [self.active[row] for row in keep]
        self.flat = self.flat.detach()[rows].clone().requires_grad_(True)
        self.buffers = {n: b[rows].clone() for n, b in self.buffers.items()}
        self.optimizer.keep(rows)
        self._stack_data()

    def fit(self) -> list[list[dict[str, float]]]:
        """Train until every fold stopped, then ``finish()`` each; per trainer its history."""
        histories: list[list[dict[str, float]]] = [[] for _ in self.trainers]
        while not self.stopped:
            for history, metrics in zip(histories, self.train_epoch(), strict=True):
                if metrics is not None:
                    history.append(metrics)
        for t in self.trainers:
            t.finish()
        return histories

    def predict(self, fold: int, x, lengths=None) -> np.ndarray:
        """Predictions of fold ``fold``'s model (see ``Trainer.predict``)."""
        return self.trainers[fold].predict(x, lengths)
