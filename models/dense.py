"""The hand-batched dense chain of a fused FNN: every fold's weights stacked along dim 0, one
``baddbmm`` per Linear for all folds, and for the common layers a backward pass by hand
(``FusedTrainer`` uses both; measured faster than ``vmap`` and than autograd's engine)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from models.fnn import FNN
from models.losses import fold_losses

_ELEMENTWISE = (nn.ReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.Identity)
# what the hand-written backward pass covers (else autograd): see manual_step
_MANUAL_LAYERS = (nn.Linear, nn.ReLU, nn.Tanh, nn.Identity)


def dense_layers(model: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The ``(name, layer)`` chain of an FNN that the hand-batched path can run, else None."""
    if not isinstance(model, FNN) or getattr(model, "skip", None) is not None:
        return None
    layers = [(f"net.net.{name}", layer) for name, layer in model.net.net.named_children()]
    for _, layer in layers:
        if isinstance(layer, nn.BatchNorm1d):
            if layer.momentum is None or not layer.track_running_stats:
                return None
        elif not isinstance(layer, (nn.Linear, nn.Dropout, *_ELEMENTWISE)):
            return None
    return layers


def manual_backward_ok(layers: list[tuple[str, nn.Module]] | None, loss_name: str) -> bool:
    """Whether a dense chain's gradients can be computed by hand: Linear, ReLU, Tanh, Identity
    and dropout at 0, under the cross-entropy loss."""
    if layers is None or loss_name != "cross_entropy":
        return False
    return all(
        isinstance(layer, _MANUAL_LAYERS) or (isinstance(layer, nn.Dropout) and layer.p == 0)
        for _, layer in layers
    )


def dense_losses(layers, params, buffers, x, y, loss_name: str) -> torch.Tensor:
    """Each fold's mean loss ``(k,)`` of a dense chain run hand-batched: ``baddbmm`` per
    Linear, per-fold BatchNorm as k·C channels (measured faster than vmap, whose batching
    rule for linear was ~2× slower than baddbmm here)."""
    h = x.flatten(2)  # (k, batch, features)
    for name, layer in layers:
        if isinstance(layer, nn.Linear):
            weight = params[f"{name}.weight"].transpose(1, 2)  # (k, in, out)
            bias = params.get(f"{name}.bias")
            h = torch.bmm(h, weight) if bias is None else torch.baddbmm(bias[:, None], h, weight)
            # (k, batch, out)
        elif isinstance(layer, nn.BatchNorm1d):
            # the k folds' channels side by side: (batch, k·C), so each fold keeps its own
            # batch statistics and running statistics (views into the stacked buffers)
            k, batch, width = h.shape
            weight, bias = params.get(f"{name}.weight"), params.get(f"{name}.bias")
            flat = F.batch_norm(
                h.transpose(0, 1).reshape(batch, k * width),
                buffers[f"{name}.running_mean"].view(-1),
                buffers[f"{name}.running_var"].view(-1),
                None if weight is None else weight.reshape(-1),
                None if bias is None else bias.reshape(-1),
                training=True,
                momentum=layer.momentum,
                eps=layer.eps,
            )
            buffers[f"{name}.num_batches_tracked"].add_(1)
            h = flat.view(batch, k, width).transpose(0, 1)  # (k, batch, C)
        elif isinstance(layer, nn.Dropout):
            h = F.dropout(h, layer.p, training=True)  # independent masks per fold
        else:
            h = layer(h)
    return fold_losses(loss_name, h, y)


@torch.no_grad()
def manual_step(layers, params, x, y, grads: dict[str, torch.Tensor]) -> torch.Tensor:
    """Every fold's mean cross-entropy ``(k,)``; each parameter's gradient is written into
    ``grads[name]`` (a ``(k, *shape)`` tensor, e.g. a view of a flat gradient buffer), for a
    dense chain (:func:`manual_backward_ok`): the forward pass keeps each layer's input,
    the backward pass multiplies back through it with the same batched matrix products
    autograd would run, without its engine. Equal to autograd's gradients up to float
    rounding (tests/test_fused.py)."""
    h = x.flatten(2)  # (k, batch, features)
    saved: list[tuple[str, str, torch.Tensor]] = []
    for name, layer in layers:
        if isinstance(layer, nn.Linear):
            weight, bias = params[f"{name}.weight"], params.get(f"{name}.bias")
            saved.append(("linear", name, h))
            t = weight.transpose(1, 2)
            h = torch.bmm(h, t) if bias is None else torch.baddbmm(bias[:, None], h, t)
        elif isinstance(layer, nn.ReLU):
            h = torch.relu(h)
            saved.append(("relu", name, h))
        elif isinstance(layer, nn.Tanh):
            h = torch.tanh(h)
            saved.append(("tanh", name, h))
    log_p = torch.log_softmax(h, dim=-1)  # (k, batch, classes)
    target = y[..., None]
    losses = -log_p.gather(2, target).squeeze(2).mean(1)
    # d(mean loss of fold f)/d logits: (softmax - one-hot) / batch
    g = log_p.exp_()
    g.scatter_add_(2, target, torch.full(target.shape, -1.0, dtype=g.dtype, device=g.device))
    g.div_(y.shape[1])
    first = next(i for i, (kind, _, _) in enumerate(saved) if kind == "linear")
    for i in range(len(saved) - 1, first - 1, -1):
        kind, name, value = saved[i]
        if kind == "linear":
            torch.bmm(g.transpose(1, 2), value, out=grads[f"{name}.weight"])
            if f"{name}.bias" in params:
                torch.sum(g, 1, out=grads[f"{name}.bias"])
            if i > first:  # no gradient for the data
                g = torch.bmm(g, params[f"{name}.weight"])
        elif kind == "relu":  # value = relu(h) >= 0, so sign(value) is the 0/1 mask as a
            g = g * torch.sign(value)  # float: ~4x faster than multiplying by a bool mask
        else:  # tanh
            g = g * (1 - value * value)
    return losses
