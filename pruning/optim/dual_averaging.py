"""Shared machinery of gRDA and sDprun: dual averaging with a growing soft threshold.

Both optimizers keep, per parameter, an accumulator started at the initial weights and moved by
plain gradient steps::

    v_0 = w_0,        v_n = v_{n-1} - γ_n ∇f(w_{n-1})

and a threshold that is accumulated step by step, so it stays right under any learning-rate
schedule (with constant γ it equals c·√γ·(nγ)^μ)::

    λ_n = Σ_{k≤n} c · γ_k^(μ+1/2) · (k^μ − (k−1)^μ)

The weights are a shrinkage of the accumulator by λ_n; the subclasses say which shrinkage
(elementwise for gRDA, whole groups for sDprun). Parameter groups with ``prune=False`` (the
classifier's outputs, layers the user excluded) get plain dual averaging: w_n = v_n.

Step count and λ_n are per-group Python numbers kept in the param group, so ``state_dict`` carries
them and a resumed run continues exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch.optim import Optimizer


class DualAveraging(Optimizer, ABC):
    def __init__(self, params, lr: float, c: float, mu: float, foreach: bool | None = None):
        if not (isinstance(lr, float | int) and lr > 0):
            raise ValueError(f"Invalid learning rate lr={lr!r}: must be > 0")
        if not (isinstance(c, float | int) and c >= 0):
            raise ValueError(f"Invalid threshold scale c={c!r}: must be >= 0")
        if not (isinstance(mu, float | int) and 0 < mu < 1):
            raise ValueError(f"Invalid threshold exponent mu={mu!r}: must be in (0, 1)")
        defaults = dict(lr=lr, c=c, mu=mu, prune=True, foreach=foreach, step=0, threshold=0.0)
        super().__init__(params, defaults)

    @abstractmethod
    def _shrink(self, group: dict, params: list[torch.Tensor], accumulators: list[torch.Tensor],
                threshold: float, foreach: bool) -> None:
        """Write the weights from the accumulators by this method's shrinkage."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = group["params"]
            accumulators = [self._accumulator(p) for p in params]
            group["step"] += 1
            group["threshold"] += threshold_increment(group["lr"], group["c"], group["mu"],
                                                      group["step"])
            foreach = self._use_foreach(group, params)
            grads = [p.grad for p in params]
            _accumulate(accumulators, grads, group["lr"], foreach)
            if group["prune"]:
                self._shrink(group, params, accumulators, group["threshold"], foreach)
            elif foreach:
                torch._foreach_copy_(params, accumulators)
            else:
                for p, v in zip(params, accumulators, strict=True):
                    p.copy_(v)
        return loss

    def _accumulator(self, p: torch.Tensor) -> torch.Tensor:
        state = self.state[p]
        if "accumulator" not in state:
            # Created on the first step, before any update: v_0 is exactly the initial weight.
            state["accumulator"] = p.detach().clone(memory_format=torch.preserve_format)
        return state["accumulator"]

    @staticmethod
    def _use_foreach(group: dict, params: list[torch.Tensor]) -> bool:
        if group["foreach"] is not None:
            return group["foreach"]
        # As torch.optim does: the multi-tensor path only when every tensor is a dense CUDA tensor,
        # where it saves kernel launches; on the CPU it is no faster (bench/optimizer_step.py).
        return all(p.is_cuda and not p.is_sparse for p in params)


def threshold_increment(lr: float, c: float, mu: float, step: int) -> float:
    """One term c·γ_k^(μ+1/2)·(k^μ − (k−1)^μ) of the accumulated threshold λ_n."""
    return c * lr ** (mu + 0.5) * (step**mu - (step - 1) ** mu)


def _accumulate(accumulators: list[torch.Tensor], grads: list[torch.Tensor | None], lr: float,
                foreach: bool) -> None:
    # A parameter without a gradient this step (unused branch) counts as a zero gradient: its
    # accumulator stays put while the threshold keeps growing.
    pairs = [(v, g) for v, g in zip(accumulators, grads, strict=True) if g is not None]
    if not pairs:
        return
    if foreach:
        vs, gs = zip(*pairs, strict=True)
        torch._foreach_add_(list(vs), list(gs), alpha=-lr)
    else:
        for v, g in pairs:
            v.add_(g, alpha=-lr)
