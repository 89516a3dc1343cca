"""``gfs``: Greedy Forward Selection (Ye, Gong, Nie, Zhu, Liu — "Good Subnetworks Provably Exist:
Pruning via Greedy Forward Selection", ICML 2020).

Starting from the network trained densely until ``prune_start``, layers are pruned one at a time
from the input side. Layer ℓ's kept set starts empty, S = ∅ (the layer emits only zeros), and
grows greedily, S ← S ∪ {argmin_u L(S ∪ {u})}, where L is the cross-entropy on a fixed minibatch
of ``prune_samples`` training samples with the earlier layers already pruned, until |S| reaches
the layer's budget. The unselected units are zeroed for good and the rest of the run fine-tunes.
One-shot: ``prune_end`` and ``prune_interval`` are not used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pruning.methods.common import (
    MaskedMethod,
    apply_keep,
    keep_counts,
    sample_batch,
    unit_output_module,
)

# Candidates are scored together by stacking copies of the minibatch; this caps the stack.
_MAX_STACKED_SAMPLES = 8192


class GreedyForwardSelection(MaskedMethod):
    def __init__(self, job):
        super().__init__(job)
        self.selection_losses: list[list[float]] = []  # per layer, loss after each addition

    def before_forward(self, step: int) -> None:
        if step == self.schedule.start:
            self.set_keep(self.select(keep_counts(self.job, self.job.config.target_ratio), step))

    @torch.no_grad()
    def select(self, counts: list[int], step: int) -> list[torch.Tensor]:
        job = self.job
        inputs, targets = sample_batch(job, job.config.prune_samples, salt=step)
        keep = [k.clone() for k in self.keep]
        was_training = job.model.training
        job.model.eval()  # fixed BatchNorm statistics: the loss depends on the selection only
        self.selection_losses = []
        try:
            for index, (group, count) in enumerate(zip(job.structure.groups, counts,
                                                       strict=True)):
                keep[index] = self._grow(group, count, inputs, targets)
                apply_keep(job.structure, keep)
        finally:
            job.model.train(was_training)
        return keep

    def _grow(self, group, count, inputs, targets) -> torch.Tensor:
        units = group.num_units
        chosen = torch.zeros(units, dtype=torch.bool, device=inputs.device)
        masks: list[torch.Tensor] = []

        emitter = unit_output_module(self.job.model, group)
        # Where the units sit in its output: a Linear's features are the last axis (also over
        # a sequence of tokens), a conv's or a BatchNorm's channels axis 1.
        last = isinstance(emitter, nn.Linear)

        def mask_units(module, args, output):
            trials = output.view(len(masks[0]), -1, *output.shape[1:])  # (trials, N, ...)
            shape = [len(masks[0])] + [1] * (trials.dim() - 1)
            shape[-1 if last else 2] = units
            return (trials * masks[0].view(shape).to(output.dtype)).view_as(output)

        handle = emitter.register_forward_hook(mask_units)
        losses = []
        try:
            chunk = max(1, _MAX_STACKED_SAMPLES // len(targets))
            for _ in range(count):
                candidates = (~chosen).nonzero().flatten()
                best_loss, best = float("inf"), -1
                for start in range(0, len(candidates), chunk):
                    part = candidates[start:start + chunk]
                    trial = chosen.expand(len(part), units).clone()
                    trial[torch.arange(len(part)), part] = True
                    masks[:] = [trial]
                    logits = self.job.model(inputs.repeat(len(part), *([1] * (inputs.dim() - 1))))
                    loss = F.cross_entropy(logits.float(), targets.repeat(len(part)),
                                           reduction="none").view(len(part), -1).mean(1)
                    value, position = loss.min(0)
                    if float(value) < best_loss:
                        best_loss, best = float(value), int(part[position])
                chosen[best] = True
                losses.append(best_loss)
        finally:
            handle.remove()
        self.selection_losses.append(losses)
        return chosen
