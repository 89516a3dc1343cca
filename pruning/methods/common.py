"""What the masking baselines share: keep masks, the pruning schedule, per-layer budgets, ranks.

A pruned unit is a whole group (producer row, bias, BatchNorm γ and β) held at exactly zero: the
mask is applied to the weights after every optimizer step, and to the gradients and momentum
before and after it, so the existing sparsity metrics and physical compaction see it as removed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pruning.groups import GroupStructure, LayerGroup
from pruning.methods.base import Method

if TYPE_CHECKING:
    from pruning.job import Job


def _rows(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *([1] * (like.dim() - 1)))


@torch.no_grad()
def apply_keep(structure: GroupStructure, keep: list[torch.Tensor],
               optimizer: torch.optim.Optimizer | None = None) -> None:
    """Zero every row of a pruned unit in the weights (and in SGD's momentum buffers)."""
    for group, mask in zip(structure.groups, keep, strict=True):
        for _, p in group.params:
            drop = _rows(~mask, p)
            p.masked_fill_(drop, 0.0)
            buffer = optimizer.state.get(p, {}).get("momentum_buffer") if optimizer else None
            if buffer is not None:
                buffer.masked_fill_(drop, 0.0)


@torch.no_grad()
def mask_grads(structure: GroupStructure, keep: list[torch.Tensor]) -> None:
    for group, mask in zip(structure.groups, keep, strict=True):
        for _, p in group.params:
            if p.grad is not None:
                p.grad.masked_fill_(_rows(~mask, p), 0.0)


@torch.no_grad()
def weight_l1(group: LayerGroup) -> torch.Tensor:
    """Σ|W_u| over unit u's producer weights (the filter), as Li et al. rank filters."""
    weight = group.params[0][1]
    return weight.reshape(weight.shape[0], -1).abs().sum(1)


def rank_of(scores: torch.Tensor) -> torch.Tensor:
    """0 for the least important unit, n−1 for the most; ties broken by index (stable)."""
    order = torch.sort(scores, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(len(order), device=order.device)
    return ranks


def rank_increment(ranks: torch.Tensor, n_prune: int, amplitude: float) -> torch.Tensor:
    """SPP's and IncReg's centrally symmetric step Δ(r) for rank r (0 = least important).

    With N = ``n_prune`` and α = 3: Δ(r) = A·(e^{−αr/N} − e^{−α})/(1 − e^{−α}) for r ≤ N, so
    Δ(0) = A and Δ(N) = 0; Δ(r) = −Δ(2N − r) for N < r < 2N and −A from 2N on. Units that should
    go are pushed up, the others pulled down, the more the further their rank is from N.
    """
    r = ranks.to(torch.float64)
    if n_prune <= 0:
        return torch.full_like(r, -amplitude)
    floor = math.exp(-3.0)

    def rise(x):
        return amplitude * (torch.exp(-3.0 * x / n_prune) - floor) / (1 - floor)
    mirrored = -rise((2 * n_prune - r).clamp(min=0))
    return torch.where(r <= n_prune, rise(r), mirrored)


def pick_to_prune(priority: torch.Tensor, ranks: torch.Tensor, count: int) -> torch.Tensor:
    """Boolean mask of the ``count`` units of highest ``priority``; among equals the less
    important (lower rank) goes first."""
    by_rank = torch.sort(ranks, stable=True).indices
    order = by_rank[torch.sort(-priority[by_rank], stable=True).indices]
    prune = torch.zeros(len(ranks), dtype=torch.bool, device=ranks.device)
    prune[order[:count]] = True
    return prune


def final_prune_counts(job: Job) -> list[int]:
    """Units each layer has lost once the run reaches its target (``keep_counts`` at the end)."""
    counts = keep_counts(job, job.config.target_ratio)
    return [g.num_units - c for g, c in zip(job.structure.groups, counts, strict=True)]


def unit_zeros(job: Job) -> list[torch.Tensor]:
    """One float64 zero per unit of every group: per-unit state such as a probability."""
    return [torch.zeros(g.num_units, dtype=torch.float64, device=job.device)
            for g in job.structure.groups]


def keep_counts(job: Job, ratio: float) -> list[int]:
    """Units to keep per layer so the same fraction stays in every layer and at least ``ratio``
    of the dense FLOPs (or params, per ``config.target``) is removed.

    The common keep fraction k solves remaining(k, …, k) = 1 − ratio by bisection; rounding is
    then corrected by dropping one more unit from the relatively fullest layer until the goal
    holds (every layer keeps at least one unit).
    """
    sizes = [g.num_units for g in job.structure.groups]
    goal = 1.0 - ratio
    low, high = 0.0, 1.0
    for _ in range(50):
        mid = (low + high) / 2
        if remaining(job, [mid] * len(sizes)) > goal:
            high = mid
        else:
            low = mid
    counts = [max(1, round(high * n)) for n in sizes]
    while remaining(job, [c / n for c, n in zip(counts, sizes, strict=True)]) > goal + 1e-12:
        candidates = [i for i, c in enumerate(counts) if c > 1]
        if not candidates:
            break
        fullest = max(candidates, key=lambda i: counts[i] / sizes[i])
        counts[fullest] -= 1
    return counts


def remaining(job: Job, alive_fraction: list[float]) -> float:
    params, flops = job.cost.remaining(alive_fraction)
    return flops if job.config.target == "flops" else params


def keep_top(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Boolean mask of the ``count`` highest scores (ties: the lower index wins)."""
    keep = torch.zeros(len(scores), dtype=torch.bool, device=scores.device)
    keep[rank_of(scores) >= len(scores) - count] = True
    return keep


def unit_output_module(model: nn.Module, group: LayerGroup) -> nn.Module:
    """The module whose output carries the group's units as channels (its BatchNorm if any)."""
    return model.get_submodule(group.norm_name) if group.norm_name else group.module


def sample_batch(job: Job, size: int, salt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A reproducible minibatch of training data, a function of (seed, salt) only."""
    generator = torch.Generator().manual_seed(job.config.seed * 7_919 + salt)
    count = min(size, len(job.data.train_y))
    index = torch.randperm(len(job.data.train_y), generator=generator)[:count].to(job.device)
    return job.data.train_x[index], job.data.train_y[index]


class Schedule:
    """When a baseline prunes: every ``prune_interval`` steps from ``prune_start`` to
    ``prune_end`` (fractions of the run), always also at the end step, which reaches the target."""

    def __init__(self, job: Job):
        config, total = job.config, job.total_steps
        self.check(config)
        self.start = min(round(config.prune_start * total), total - 1)
        self.end = min(max(self.start, round(config.prune_end * total)), total - 1)
        self.interval = config.prune_interval

    @staticmethod
    def check(config) -> None:
        if config.prune_end < config.prune_start:
            raise ValueError(f"prune_end ({config.prune_end}) comes before prune_start "
                             f"({config.prune_start})")

    def fraction(self, step: int) -> float | None:
        """Fraction of the final target to reach at ``step``; None when no decision is due."""
        if step < self.start or step > self.end:
            return None
        if step != self.end and (step - self.start) % self.interval:
            return None
        span = self.end - self.start + self.interval
        return min(1.0, (step - self.start + self.interval) / span)


class MaskedMethod(Method):
    """Keeps pruned groups at zero around every step; subclasses decide ``self.keep``."""

    def __init__(self, job: Job):
        super().__init__(job)
        self.schedule = Schedule(job)
        self.keep = [torch.ones(g.num_units, dtype=torch.bool, device=job.device)
                     for g in job.structure.groups]

    def before_step(self, step: int) -> None:
        mask_grads(self.job.structure, self.keep)

    def after_step(self, step: int) -> None:
        apply_keep(self.job.structure, self.keep, self.job.optimizer)

    def set_keep(self, keep: list[torch.Tensor]) -> None:
        self.keep = keep
        apply_keep(self.job.structure, self.keep, self.job.optimizer)

    def metrics(self) -> dict[str, float]:
        """target_progress: the removed share of FLOPs (or params) over target_ratio."""
        fractions = [float(k.float().mean()) for k in self.keep]
        removed = 1.0 - remaining(self.job, fractions)
        return {"target_progress": removed / max(self.job.config.target_ratio, 1e-12)}

    def state_dict(self) -> dict[str, Any]:
        return {"keep": [k.cpu() for k in self.keep]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "keep" in state:
            self.keep = [k.to(self.job.device) for k in state["keep"]]


class ScheduledPruning(MaskedMethod):
    """Prunes to target_ratio × the schedule's fraction at each decision; ``select`` picks which
    ``counts[i]`` units of layer i stay. By default those are the best by ``scores`` among the
    units still alive, so the pruned set only grows."""

    def before_forward(self, step: int) -> None:
        fraction = self.schedule.fraction(step)
        if fraction is None:
            return
        counts = keep_counts(self.job, self.job.config.target_ratio * fraction)
        self.set_keep(self.select(counts, step))

    def select(self, counts: list[int], step: int) -> list[torch.Tensor]:
        scores = self.scores(step)
        return [keep_top(s.double().masked_fill(~k, -math.inf), c)
                for s, k, c in zip(scores, self.keep, counts, strict=True)]

    def scores(self, step: int) -> list[torch.Tensor]:
        """Importance of every unit per layer (higher stays). The abstract hook of the default
        ``select``: l1-filter and eigendamage define it; pivot replaces ``select`` instead."""
        raise NotImplementedError
