"""Sparsity and the size of the equivalent physically pruned network.

Remaining params and FLOPs are exact for the network that removing every zero group would give:
a dead unit takes its row of the producer (weights, bias, BatchNorm γ and β) and the matching
input slice of every consumer with it. FLOPs count the multiply-adds of Conv2d and Linear layers
(2 per MAC), as ``torch.utils.flop_counter`` does; norms, activations and pooling are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pruning.groups import GroupStructure


@dataclass(frozen=True)
class _Layer:
    name: str
    flops: int                # dense FLOPs for one sample
    out_group: int | None     # index of the group this layer produces, if pruned
    in_group: int | None      # index of the group whose units this layer reads


class CostModel:
    """Counts the dense network once, then prices any pattern of alive units cheaply."""

    def __init__(self, model: nn.Module, structure: GroupStructure,
                 input_shape: tuple[int, ...]):
        self.structure = structure
        produced = {g.name: i for i, g in enumerate(structure.groups)}
        consumed = {c.name: i for i, g in enumerate(structure.groups) for c in g.consumers}
        norms = {g.norm_name: i for i, g in enumerate(structure.groups) if g.norm_name}
        flops = _dense_flops(model, input_shape)
        self.layers = [_Layer(name, f, produced.get(name), consumed.get(name))
                       for name, f in flops.items()]
        self.dense_flops = sum(layer.flops for layer in self.layers)
        # Each parameter's count scales with the alive fraction of (out group, in group).
        self._param_terms = []
        for name, p in model.named_parameters():
            owner, _, kind = name.rpartition(".")
            out_group = produced.get(owner, norms.get(owner))
            in_group = consumed.get(owner) if kind == "weight" else None
            self._param_terms.append((p.numel(), out_group, in_group))
        self.dense_params = sum(n for n, _, _ in self._param_terms)

    def remaining(self, alive_fraction: list[float]) -> tuple[float, float]:
        """(params, FLOPs) of the physically pruned network as fractions of the dense ones."""
        def scale(out_group, in_group):
            out = alive_fraction[out_group] if out_group is not None else 1.0
            inp = alive_fraction[in_group] if in_group is not None else 1.0
            return out * inp

        params = sum(n * scale(o, i) for n, o, i in self._param_terms)
        flops = sum(layer.flops * scale(layer.out_group, layer.in_group) for layer in self.layers)
        return params / self.dense_params, flops / max(self.dense_flops, 1)


@torch.no_grad()
def _dense_flops(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    flops: dict[str, int] = {}

    def count(name):
        def hook(module, inputs, output):
            if isinstance(module, nn.Conv2d):
                per_output = module.in_channels // module.groups * module.kernel_size[0] * \
                    module.kernel_size[1]
                flops[name] = 2 * output[0].numel() * per_output
            else:
                flops[name] = 2 * module.in_features * module.out_features
        return hook

    handles = [m.register_forward_hook(count(n)) for n, m in model.named_modules()
               if isinstance(m, nn.Conv2d | nn.Linear)]
    was_training = model.training
    first = next(model.parameters())
    try:
        model.eval()  # BatchNorm1d refuses a batch of one in training mode
        model(torch.zeros(1, *input_shape, device=first.device, dtype=first.dtype))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return flops


@torch.no_grad()
def sparsity_metrics(structure: GroupStructure, cost: CostModel) -> dict:
    """The per-log-interval sparsity numbers, with one device-to-host copy."""
    params = structure.prunable_parameters()
    if not params:
        return {"weight_sparsity": 0.0, "group_sparsity": 0.0, "remaining_params": 1.0,
                "remaining_flops": 1.0, "norm_ratio": 0.0, "layer_group_sparsity": {}}
    alive = [g.alive() for g in structure.groups]
    stats = torch.stack([
        sum(p.count_nonzero() for p in params).to(torch.float64),
        sum(p.detach().double().square().sum() for p in params).sqrt(),
        sum(p.detach().double().abs().sum() for p in params),
        *[a.sum().to(torch.float64) for a in alive],
    ]).tolist()
    nonzero, l2, l1, *alive_counts = stats
    total_weights = sum(p.numel() for p in params)
    units = [g.num_units for g in structure.groups]
    alive_fraction = [a / u for a, u in zip(alive_counts, units, strict=True)]
    remaining_params, remaining_flops = cost.remaining(alive_fraction)
    return {
        "weight_sparsity": 1 - nonzero / total_weights,
        "group_sparsity": 1 - sum(alive_counts) / sum(units),
        "remaining_params": remaining_params,
        "remaining_flops": remaining_flops,
        "norm_ratio": l2 / l1 if l1 > 0 else 0.0,
        "layer_group_sparsity": {g.name: 1 - f for g, f in zip(structure.groups, alive_fraction,
                                                              strict=True)},
    }
