"""``spp``: Structured Probabilistic Pruning (Wang, Zhang, Wang, Hu — "Structured Probabilistic
Pruning for Convolutional Neural Network Acceleration", BMVC 2018; arXiv 1709.06994, 2017).

Every unit u carries a pruning probability P_u, zero at first. At each decision the units of a
layer are ranked by importance s_u = Σ|W_u| (rank 0 = least important) and
P_u ← clip(P_u + Δ(r_u), 0, 1) with the centrally symmetric Δ of ``rank_increment`` around
N = the layer's number of units to remove, amplitude ``spp_increment``. Until ``prune_end`` every
step samples a mask m_u ~ Bernoulli(1 − P_u) and trains the masked network: a masked unit is zero
in that forward pass and its weights do not move, but they are kept, so a unit whose probability
falls again comes back. A unit whose P_u reaches 1 is removed for good; a layer stops once N units
are removed, and at ``prune_end`` each layer removes the N units of highest P_u (ties: least
important first), which reaches the target. Fine-tuning follows.
"""

from __future__ import annotations

from typing import Any

import torch

from pruning.methods.common import (
    MaskedMethod,
    apply_keep,
    final_prune_counts,
    mask_grads,
    pick_to_prune,
    rank_increment,
    rank_of,
    unit_zeros,
    weight_l1,
)


class SPP(MaskedMethod):
    def __init__(self, job):
        super().__init__(job)
        self.to_prune = final_prune_counts(job)
        self.probability = unit_zeros(job)
        self._sampled: list[torch.Tensor] | None = None
        self._saved: list[list[torch.Tensor]] = []

    def before_forward(self, step: int) -> None:
        if self.schedule.fraction(step) is not None:
            self._decide(final=step == self.schedule.end)
        if self.schedule.start <= step < self.schedule.end:
            self._sample(step)

    @torch.no_grad()
    def _decide(self, final: bool) -> None:
        keep = []
        for group, p, n_prune, alive in zip(self.job.structure.groups, self.probability,
                                            self.to_prune, self.keep, strict=True):
            ranks = rank_of(weight_l1(group))
            removed = ~alive
            if final:
                removed = pick_to_prune(p.masked_fill(removed, 2.0), ranks, n_prune)
            elif int(removed.sum()) < n_prune:
                p.add_(rank_increment(ranks, n_prune, self.job.config.spp_increment)).clamp_(0, 1)
                p[removed] = 1.0
                certain = p.ge(1.0)
                removed = pick_to_prune(certain.double(), ranks, min(n_prune, int(certain.sum())))
            if final or int(removed.sum()) >= n_prune:
                p.copy_(removed.double())  # the layer is done: the rest stays for good
            keep.append(~removed)
        self.set_keep(keep)

    @torch.no_grad()
    def _sample(self, step: int) -> None:
        # A function of (seed, step) only, so a resumed run draws the same masks.
        generator = torch.Generator().manual_seed(self.job.config.seed * 1_000_033 + step)
        self._sampled = [torch.rand(len(p), generator=generator, dtype=torch.float64)
                         .to(p.device).ge(p) for p in self.probability]
        self._saved = [[w.detach().clone() for _, w in g.params]
                       for g in self.job.structure.groups]
        apply_keep(self.job.structure, self._sampled)

    def before_step(self, step: int) -> None:
        super().before_step(step)
        if self._sampled is not None:
            mask_grads(self.job.structure, self._sampled)

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        if self._sampled is not None:
            # Masked units get their weights back untouched (momentum may have moved them).
            for group, mask, saved in zip(self.job.structure.groups, self._sampled, self._saved,
                                          strict=True):
                for (_, w), old in zip(group.params, saved, strict=True):
                    w.copy_(torch.where(mask.view(-1, *([1] * (w.dim() - 1))), w, old))
            self._sampled, self._saved = None, []
        super().after_step(step)

    def metrics(self) -> dict[str, float]:
        mean = torch.cat(self.probability).mean() if self.probability else torch.zeros(())
        return {**super().metrics(), "mean_pruning_probability": float(mean)}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "probability": [p.cpu() for p in self.probability]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "probability" in state:
            self.probability = [p.to(self.job.device) for p in state["probability"]]
