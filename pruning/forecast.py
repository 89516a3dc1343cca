"""The pruning forecast of a built job, from its real weights: when the threshold alone forces
each group (sDprun) or half of each layer's weights (gRDA) to zero.

sDprun sets ``w_G = v_G · max(0, 1 − λ_n·s_G/‖v_G‖)``; the accumulator ``v`` starts at the
initial weights and moves only by gradient steps, while ``λ_n`` grows every step whatever the
gradient does. So with ``v`` left where it is, unit G is exactly zero from the first step n with
``λ_n·s_G ≥ ‖v_G‖`` (``s_G = √|G|``; with ``group_weighting="batchnorm"``, norm and size of the
group's BatchNorm γ, β alone, as ``SDprun`` sizes it). gRDA zeroes a weight once
``λ_n ≥ |v|``. λ_n is accumulated exactly as ``DualAveraging.step`` does, with the lr that
``pruning.train`` sets before each step.

The gradient can keep a unit alive only by growing ``‖v_G‖``; for the weights before a
BatchNorm it hardly does (the loss is blind to their scale, so their gradient is orthogonal to
them), and there the forecast is what happens. ``pruneboard.spec.forecast`` computes the same
from the architecture alone, before a job exists, and words the warning for both.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from pruneboard.spec.forecast import DUAL_AVERAGING, forecast_document, layer_entry
from pruning.optim.dual_averaging import threshold_increment
from pruning.optim.sdprun import unit_norms
from pruning.schedules import learning_rate


def forecast(job: Any) -> dict[str, Any] | None:
    """The forecast of ``job`` (a ``pruning.job.Job``) from where its optimizer stands (step 0
    and the initial weights, or a resumed run's accumulators and threshold); None for a method
    without a threshold."""
    config = job.config
    if config.method not in DUAL_AVERAGING:
        return None
    start, threshold = _optimizer_position(job.optimizer)
    path = threshold_path(config, job.total_steps, job.steps_per_epoch, start=start,
                          threshold=threshold)
    if config.method == "grda":
        weighting = None
        entries = _grda_entries(job, path, start)
    else:
        weighting = config.group_weighting
        entries = [_sdprun_entry(group, job, path, start, weighting)
                   for group in job.structure.groups]
    end = path[-1].item() if len(path) else threshold
    return forecast_document(config.method, weighting, "engine", entries, start_step=start,
                             total_steps=job.total_steps, threshold_end=end)


def threshold_path(config: Any, total_steps: int, steps_per_epoch: int, *, start: int = 0,
                   threshold: float = 0.0) -> torch.Tensor:
    """λ after each optimizer step start+1 … total_steps (float64), summed term by term as
    ``DualAveraging.step`` sums it, with the lr ``pruning.train`` sets before each step."""
    unit = config.schedule_unit
    values = []
    value = threshold
    for step in range(start + 1, total_steps + 1):
        lr = learning_rate(config.schedule, config.lr, step - 1, total_steps,
                           config.lr_milestones, config.lr_gamma, unit=unit,
                           steps_per_epoch=steps_per_epoch)
        value += threshold_increment(lr, config.c, config.mu, step)
        values.append(value)
    return torch.tensor(values, dtype=torch.float64)


def death_steps(targets: torch.Tensor, path: torch.Tensor, start: int) -> torch.Tensor:
    """For each target λ, the first step whose λ reaches it (int64); a step past the run where
    it never does."""
    index = torch.searchsorted(path, targets.detach().to("cpu", torch.float64).contiguous())
    return start + 1 + index


def _optimizer_position(optimizer: torch.optim.Optimizer) -> tuple[int, float]:
    for group in optimizer.param_groups:
        if group.get("prune", True):
            return int(group.get("step", 0)), float(group.get("threshold", 0.0))
    return 0, 0.0


def _accumulator(optimizer: torch.optim.Optimizer, p: torch.Tensor) -> torch.Tensor:
    """v: the optimizer's accumulator once it has one, else the weight itself (v_0 = w_0)."""
    state = optimizer.state.get(p, {})
    return state.get("accumulator", p).detach()


def _sdprun_entry(group: Any, job: Any, path: torch.Tensor, start: int, weighting: str
                  ) -> dict[str, Any]:
    tensors = [_accumulator(job.optimizer, p) for _, p in group.params]
    sized = tensors
    if weighting == "batchnorm":
        norm_ids = {id(p) for _, p in norm_part(group, job.model)}
        part = [t for (_, p), t in zip(group.params, tensors, strict=True) if id(p) in norm_ids]
        sized = part or tensors
    with torch.no_grad():
        norms = unit_norms([t.double() for t in sized])
    size = sum(t[0].numel() for t in sized)
    targets = norms / math.sqrt(size)
    steps = death_steps(targets, path, start)
    forced = steps <= job.total_steps
    # The step by which half the units are forced: the ⌈n/2⌉-th to go.
    median = steps.kthvalue((len(steps) + 1) // 2).values.item()
    needed = targets.cpu().kthvalue((len(targets) + 1) // 2).values.item()
    producers = list(getattr(group, "producers", None) or [group.name])
    return layer_entry(group.name, producers, group.num_units, group.unit_size, needed,
                       median if median <= job.total_steps else None,
                       forced.double().mean().item())


def norm_part(group: Any, model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The group's BatchNorm γ, β: its ``norm_params`` where it has them, else the 1-d
    params owned by a BatchNorm module."""
    declared = getattr(group, "norm_params", None)
    if declared is not None:
        return list(declared() if callable(declared) else declared)
    modules = dict(model.named_modules())
    return [(name, p) for name, p in group.params
            if p.dim() == 1 and isinstance(modules.get(name.rpartition(".")[0]),
                                           nn.modules.batchnorm._BatchNorm)]


def _grda_entries(job: Any, path: torch.Tensor, start: int) -> list[dict[str, Any]]:
    """One entry per thresholded conv or linear weight, in the model's order."""
    thresholded = {id(p) for g in job.optimizer.param_groups if g.get("prune", True)
                   for p in g["params"]}
    end = path[-1].item() if len(path) else 0.0
    entries = []
    for name, p in job.model.named_parameters():
        if id(p) not in thresholded or p.dim() < 2:
            continue
        magnitudes = _accumulator(job.optimizer, p).abs().flatten()
        median = magnitudes.median().double().reshape(1)
        step = death_steps(median, path, start).item()
        layer = name.rpartition(".")[0]
        entries.append(layer_entry(layer, [layer], p.numel(), 1, median.item(),
                                   step if step <= job.total_steps else None,
                                   magnitudes.le(end).double().mean().item()))
    return entries
