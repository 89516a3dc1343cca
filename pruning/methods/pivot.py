"""``pivot``: pruning via matrix pivoting (after Sredojevic, Cheng, Supic, Lee, "Structured Deep
Neural Network Pruning via Matrix Pivoting", arXiv 1712.01084, 2017).

For each layer, Y (rows: samples × positions, columns: units) holds what its consumers read from
it on ``prune_samples`` training samples. QR with column pivoting (greedy Gram–Schmidt: take the
column of largest residual norm, project it out of the rest) orders the alive units so that the
first k span as much of Y as any k columns greedily can; those stay. The dropped columns are
refitted as Y_D ≈ Y_K·T (least squares) and folded into every consumer,
W_c[:, K] ← W_c[:, K] + W_c[:, D]·Tᵀ, so the consumers see nearly the same input. A unit whose
output is a linear combination of kept ones is removed without changing the function at all.
Layers go from the input side, each seeing the already pruned ones before it.
"""

from __future__ import annotations

import torch

from pruning.groups import LayerGroup
from pruning.methods.common import ScheduledPruning, apply_keep, sample_batch


def pivot_order(columns: torch.Tensor, candidates: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of ``count`` candidate columns in column-pivoted QR order."""
    residual = columns.double().clone()
    chosen: list[int] = []
    for _ in range(count):
        norms = residual.square().sum(0).masked_fill(~candidates, -1.0)
        if chosen:
            norms[chosen] = -1.0
        j = int(norms.argmax())
        chosen.append(j)
        length = residual[:, j].norm()
        if float(length) > 0:
            q = residual[:, j] / length
            residual -= torch.outer(q, q @ residual)
    return torch.tensor(chosen, dtype=torch.long, device=columns.device)


class Pivot(ScheduledPruning):
    @torch.no_grad()
    def select(self, counts: list[int], step: int) -> list[torch.Tensor]:
        inputs, _ = sample_batch(self.job, self.job.config.prune_samples, salt=step)
        keep = [k.clone() for k in self.keep]
        was_training = self.job.model.training
        self.job.model.eval()
        try:
            for index, (group, count) in enumerate(zip(self.job.structure.groups, counts,
                                                       strict=True)):
                columns = self._unit_columns(group, inputs)
                kept = pivot_order(columns, keep[index], count)
                new = torch.zeros_like(keep[index])
                new[kept] = True
                dropped = (keep[index] & ~new).nonzero().flatten()
                if len(dropped):
                    self._fold(group, columns, kept, dropped)
                keep[index] = new
                apply_keep(self.job.structure, keep)
        finally:
            self.job.model.train(was_training)
        return keep

    def _unit_columns(self, group: LayerGroup, inputs: torch.Tensor) -> torch.Tensor:
        """What the first consumer reads, one column per unit: (samples·positions, units). The
        unit's features are where ``Consumer.columns`` puts them: at an offset after a
        concatenation, H·W of them after a flatten, the last axis of a token sequence."""
        seen = []
        consumer = group.consumers[0]
        handle = consumer.module.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
        try:
            self.job.model(inputs)
        finally:
            handle.remove()
        x = seen[0].double()
        features = x.movedim(1, -1) if x.dim() == 4 else x  # the feature axis last
        picked = features[..., _columns(consumer)]  # (..., units, per unit)
        return picked.movedim(-2, -1).reshape(-1, group.num_units)

    @staticmethod
    def _fold(group: LayerGroup, columns, kept, dropped) -> None:
        fit = torch.linalg.lstsq(columns[:, kept], columns[:, dropped]).solution  # (K, D)
        for consumer in group.consumers:
            weight = consumer.module.weight
            index = _columns(consumer)  # (units, per unit): input features of each unit
            moved = torch.einsum("kd,odp...->okp...", fit, weight[:, index[dropped]].double())
            weight[:, index[kept]] += moved.to(weight.dtype)


def _columns(consumer) -> torch.Tensor:
    return torch.tensor(consumer.columns, dtype=torch.long, device=consumer.module.weight.device)
