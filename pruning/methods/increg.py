"""``increg``: Incremental Regularization (Wang, Hu, Zhang, Zhang, Wang — "Structured Pruning for
Efficient ConvNets via Incremental Regularization", IJCNN 2019; arXiv 1804.09461, 2018).

Every unit u has its own L2 penalty factor λ_u, zero at first; training minimises
L(w) + ½ Σ_u λ_u ‖w_u‖² over the whole group (weights, bias, BatchNorm γ and β), i.e. λ_u·w_u is
added to the group's gradient. At each decision units are ranked by importance s_u = Σ|W_u|,
their running-average rank r̄_u (mean over the decisions so far) is updated, and
λ_u ← max(0, λ_u + Δ(r̄_u)) with the centrally symmetric Δ of ``rank_increment`` around N = the
layer's number of units to remove, amplitude ``increg_increment``: unimportant units are
squeezed harder, important ones relieved. A unit whose λ_u reaches ``increg_target`` is removed;
a layer stops (all its λ back to 0) once N units are gone, and at ``prune_end`` each layer removes
the N units of highest λ_u (ties: lowest average rank), which reaches the target.
"""

from __future__ import annotations

from typing import Any

import torch

from pruning.methods.common import (
    MaskedMethod,
    final_prune_counts,
    pick_to_prune,
    rank_increment,
    rank_of,
    unit_zeros,
    weight_l1,
)


class IncReg(MaskedMethod):
    def __init__(self, job):
        super().__init__(job)
        self.to_prune = final_prune_counts(job)
        self.penalty = unit_zeros(job)
        self.mean_rank = [torch.zeros_like(p) for p in self.penalty]
        self.decisions = 0

    def before_forward(self, step: int) -> None:
        if self.schedule.fraction(step) is not None:
            self._decide(final=step == self.schedule.end)

    @torch.no_grad()
    def _decide(self, final: bool) -> None:
        config = self.job.config
        self.decisions += 1
        keep = []
        for group, lam, mean_rank, n_prune, alive in zip(
                self.job.structure.groups, self.penalty, self.mean_rank, self.to_prune,
                self.keep, strict=True):
            ranks = rank_of(weight_l1(group))
            mean_rank.add_((ranks.double() - mean_rank) / self.decisions)
            removed = ~alive
            # Rank order of the running average, so Δ sees ranks 0..n−1 as in the paper.
            average_ranks = rank_of(mean_rank)
            if final:
                removed = pick_to_prune(lam.masked_fill(removed, float("inf")), average_ranks,
                                        n_prune)
            elif int(removed.sum()) < n_prune:
                lam.add_(rank_increment(average_ranks, n_prune, config.increg_increment))
                lam.clamp_(min=0.0)
                lam[removed] = config.increg_target
                reached = lam.ge(config.increg_target)
                removed = pick_to_prune(lam, average_ranks, min(n_prune, int(reached.sum())))
            if final or int(removed.sum()) >= n_prune:
                lam.zero_()  # the layer is done: fine-tune the rest without the extra penalty
            keep.append(~removed)
        self.set_keep(keep)

    @torch.no_grad()
    def before_step(self, step: int) -> None:
        for group, lam in zip(self.job.structure.groups, self.penalty, strict=True):
            for _, p in group.params:
                if p.grad is not None:
                    factor = lam.to(p.dtype).view(-1, *([1] * (p.dim() - 1)))
                    p.grad.add_(factor * p)
        super().before_step(step)

    def metrics(self) -> dict[str, float]:
        top = torch.cat(self.penalty).max() if self.penalty else torch.zeros(())
        return {**super().metrics(), "max_penalty": float(top)}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "penalty": [p.cpu() for p in self.penalty],
                "mean_rank": [r.cpu() for r in self.mean_rank], "decisions": self.decisions}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "penalty" in state:
            self.penalty = [p.to(self.job.device) for p in state["penalty"]]
            self.mean_rank = [r.to(self.job.device) for r in state["mean_rank"]]
            self.decisions = state["decisions"]
