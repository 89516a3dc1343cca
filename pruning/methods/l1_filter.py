"""``l1-filter``: magnitude filter pruning (Li, Kadav, Durdanovic, Samet, Graf — "Pruning Filters
for Efficient ConvNets", ICLR 2017).

A unit's importance is s_u = Σ|W_u|, the L1 norm of its producer weights (the filter or the
neuron's input row). At each decision every layer keeps its top units by s_u among those still
alive, as many as ``keep_counts`` allows for the current share of the target; the rest are zeroed
for good and the network fine-tunes. ``prune_start == prune_end`` gives the paper's one-shot
prune-then-retrain; otherwise the target is reached in equal steps (iterative pruning).
"""

from __future__ import annotations

import torch

from pruning.methods.common import ScheduledPruning, weight_l1


class L1Filter(ScheduledPruning):
    def scores(self, step: int) -> list[torch.Tensor]:
        return [weight_l1(g) for g in self.job.structure.groups]
