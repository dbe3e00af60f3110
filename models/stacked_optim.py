"""An optimizer over parameters stacked along dim 0, one row per fold (for ``FusedTrainer``)."""

from __future__ import annotations

import torch


def fold_rows(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-fold vector ``(k,)`` shaped to broadcast over ``like`` ``(k, ...)``, in its dtype."""
    return values.to(like.device, like.dtype).view(-1, *([1] * (like.dim() - 1)))


class StackedOptimizer:
    """SGD, Adam/AdamW or RMSprop over parameters stacked along dim 0, one row per fold.

    The update mirrors torch's single-tensor implementations; step counts are per row and the
    learning rate, beta1 and momentum of each row come from that fold's own (unstepped) optimizer,
    whose scheduler the fold's trainer drives as usual.
    """

    def __init__(self, template: torch.optim.Optimizer, params: dict[str, torch.Tensor]) -> None:
        self.kind = (
            "adam"
            if isinstance(template, torch.optim.Adam)
            else "sgd"
            if isinstance(template, torch.optim.SGD)
            else "rmsprop"
        )
        group = template.param_groups[0]
        self.weight_decay = float(group["weight_decay"])
        self.decoupled = bool(group.get("decoupled_weight_decay", False))
        self.nesterov = bool(group.get("nesterov", False))
        self.dampening = float(group.get("dampening", 0.0))
        self.eps = float(group.get("eps", 0.0))
        self.beta2 = float(group["betas"][1]) if "betas" in group else 0.0
        self.alpha = float(group.get("alpha", 0.0))
        k = next(iter(params.values())).shape[0]
        self.steps = torch.zeros(k, dtype=torch.float64)
        self.state: dict[str, dict[str, torch.Tensor]] = {}
        for name, p in params.items():
            st: dict[str, torch.Tensor] = {}
            if self.kind == "adam":
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            elif self.kind == "rmsprop":
                st["square_avg"] = torch.zeros_like(p)
                if group["momentum"] > 0:
                    st["momentum_buffer"] = torch.zeros_like(p)
            self.state[name] = st

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the fold rows ``rows`` (after folds stopped)."""
        self.steps = self.steps[rows.cpu()]
        for st in self.state.values():
            for key, value in st.items():
                st[key] = value[rows]

    @torch.no_grad()
    def step(
        self,
        params: dict[str, torch.Tensor],
        hyper: dict[str, torch.Tensor],
        rows: torch.Tensor | None = None,
    ) -> None:
        """Update ``params`` from their ``.grad``; only ``rows`` when given (others unchanged).

        ``hyper`` holds float64 per-row vectors ``lr`` and ``beta1``/``momentum`` for ``rows``.
        """
        cpu_rows = None if rows is None else rows.cpu()
        before = self.steps if cpu_rows is None else self.steps[cpu_rows]
        steps = before + 1
        if cpu_rows is None:
            self.steps = steps
        else:
            self.steps[cpu_rows] = steps
        if self.kind == "adam" and rows is None and self._fused_adam(params, hyper, steps):
            return
        # per-row coefficients, computed once per step in float64 as torch does in Python floats
        lr = hyper["lr"]
        coef = {"neg_lr": -lr, "first": (before == 0).double()}
        if self.kind == "adam":
            beta1 = hyper["beta1"]
            coef["decay"] = 1 - lr * self.weight_decay
            coef["one_minus_beta1"] = 1 - beta1
            coef["neg_step_size"] = -lr / (1 - beta1**steps)
            coef["bias2_sqrt"] = (1 - self.beta2**steps).sqrt()
        if "momentum" in hyper:
            coef["momentum"] = hyper["momentum"]
        any_momentum = "momentum" in hyper and bool((hyper["momentum"] != 0).any())
        any_first = bool((before == 0).any())
        shaped: dict[tuple[str, int], torch.Tensor] = {}

        def c(key: str, like: torch.Tensor) -> torch.Tensor:
            if (key, like.dim()) not in shaped:
                shaped[key, like.dim()] = fold_rows(coef[key], like)
            return shaped[key, like.dim()]

        for name, p in params.items():
            st = self.state[name]
            if rows is None:
                self._update(p.data, p.grad, st, c, any_momentum, any_first)
                continue
            sub_p = p.data[rows]
            sub_st = {key: value[rows] for key, value in st.items()}
            self._update(sub_p, p.grad[rows], sub_st, c, any_momentum, any_first)
            p.data[rows] = sub_p
            for key, value in sub_st.items():
                st[key][rows] = value

    def _fused_adam(
        self, params: dict[str, torch.Tensor], hyper: dict[str, torch.Tensor], steps
    ) -> bool:
        """Every row's Adam step in torch's fused CPU kernel (one pass over the parameters
        instead of ~9 elementwise ones: 0.13 ms against 0.65 ms a step for the 5 folds of a
        [128, 128] FNN), when all rows share the learning rate, beta1 and step count (a fold
        whose scheduler changed its learning rate, or a ragged last batch, takes the
        per-row path). The kernel rounds differently from torch's single-tensor Adam that the
        sequential folds use: ~2e-7 apart after 30 steps."""
        fused = torch._fused_adamw_ if self.decoupled else torch._fused_adam_
        lrs, beta1s, counts = hyper["lr"].tolist(), hyper["beta1"].tolist(), steps.tolist()
        same = len(set(lrs)) == len(set(beta1s)) == len(set(counts)) == 1
        plain = all(p.device.type == "cpu" and p.dtype == torch.float32 for p in params.values())
        if not (same and plain):
            return False
        names = list(params)
        step = torch.tensor(counts[0])
        fused(
            [params[n].data for n in names],
            [params[n].grad for n in names],
            [self.state[n]["exp_avg"] for n in names],
            [self.state[n]["exp_avg_sq"] for n in names],
            [],
            [step] * len(names),
            amsgrad=False,
            lr=lrs[0],
            beta1=beta1s[0],
            beta2=self.beta2,
            weight_decay=self.weight_decay,
            eps=self.eps,
            maximize=False,
        )
        return True

    def _update(self, p, g, st, c, any_momentum: bool, any_first: bool) -> None:
        wd = self.weight_decay
        if wd != 0 and not (self.kind == "adam" and self.decoupled):
            g = g.add(p, alpha=wd)
        if self.kind == "adam":
            if wd != 0 and self.decoupled:
                p.mul_(c("decay", p))
            st["exp_avg"].lerp_(g, c("one_minus_beta1", p))
            st["exp_avg_sq"].mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            denom = (st["exp_avg_sq"].sqrt() / c("bias2_sqrt", p)).add_(self.eps)
            p.add_(st["exp_avg"].div(denom).mul_(c("neg_step_size", p)))
        elif self.kind == "sgd":
            if any_momentum:
                if "momentum_buffer" not in st:
                    st["momentum_buffer"] = g.detach().clone()
                buf = st["momentum_buffer"]
                buf.mul_(c("momentum", p)).add_(g, alpha=1 - self.dampening)
                if any_first:  # torch starts the buffer at the first gradient
                    buf.copy_(torch.where(c("first", p) > 0, g, buf))
                g = g.add(buf.mul(c("momentum", p))) if self.nesterov else buf
            p.add_(g.mul(c("neg_lr", p)))
        else:
            square_avg = st["square_avg"]
            square_avg.mul_(self.alpha).addcmul_(g, g, value=1 - self.alpha)
            avg = square_avg.sqrt().add_(self.eps)
            if "momentum_buffer" in st:
                buf = st["momentum_buffer"]
                buf.mul_(c("momentum", p)).addcdiv_(g, avg)
                p.add_(buf.mul(c("neg_lr", p)))
            else:
                p.add_(g.div(avg).mul_(c("neg_lr", p)))
