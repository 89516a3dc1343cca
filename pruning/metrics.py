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
    flops: int                              # dense FLOPs for one sample
    out_group: int | None                   # index of the group this layer emits, if pruned
    in_groups: tuple[tuple[int, float], ...]  # (group, share of this layer's inputs) it reads


class CostModel:
    """Counts the dense network once, then prices any pattern of alive units cheaply.

    A layer's size scales with the alive fraction of the group it emits (all of a coupled
    group's producers and BatchNorms share its units) times the alive share of its inputs: a
    layer reading several groups (after a concatenation) keeps the alive part of each."""

    def __init__(self, model: nn.Module, structure: GroupStructure,
                 input_shape: tuple[int, ...]):
        self.structure = structure
        emitted: dict[str, int] = {}
        read: dict[str, list[tuple[int, float]]] = {}
        for index, group in enumerate(structure.groups):
            for name in (*group.producers, *group.norm_layers):
                emitted[name] = index
            for consumer in group.consumers:
                share = group.num_units * consumer.inputs_per_unit / _input_width(consumer.module)
                read.setdefault(consumer.name, []).append((index, share))
        flops = _dense_flops(model, input_shape)
        self.layers = [_Layer(name, f, emitted.get(name), tuple(read.get(name, ())))
                       for name, f in flops.items()]
        self.dense_flops = sum(layer.flops for layer in self.layers)
        self._param_terms = []
        for name, p in model.named_parameters():
            owner, _, kind = name.rpartition(".")
            in_groups = tuple(read.get(owner, ())) if kind == "weight" else ()
            self._param_terms.append((p.numel(), emitted.get(owner), in_groups))
        self.dense_params = sum(n for n, _, _ in self._param_terms)

    def remaining(self, alive_fraction: list[float]) -> tuple[float, float]:
        """(params, FLOPs) of the physically pruned network as fractions of the dense ones."""
        def scale(out_group, in_groups):
            out = alive_fraction[out_group] if out_group is not None else 1.0
            inputs = 1.0 - sum(share * (1.0 - alive_fraction[g]) for g, share in in_groups)
            return out * inputs

        params = sum(n * scale(o, i) for n, o, i in self._param_terms)
        flops = sum(layer.flops * scale(layer.out_group, layer.in_groups)
                    for layer in self.layers)
        return params / self.dense_params, flops / max(self.dense_flops, 1)


def _input_width(module: nn.Module) -> int:
    return module.in_channels if isinstance(module, nn.Conv2d) else module.in_features


@torch.no_grad()
def _dense_flops(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    flops: dict[str, int] = {}

    def count(name):
        def hook(module, inputs, output):
            if isinstance(module, nn.Conv2d):
                per_output = module.in_channels // module.groups * module.kernel_size[0] * \
                    module.kernel_size[1]
                flops[name] = 2 * output[0].numel() * per_output
            else:  # once per token for a Linear on (batch, tokens, features)
                flops[name] = 2 * module.in_features * output[0].numel()
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
    """The per-log-interval sparsity numbers, with one device-to-host copy. Weight sparsity
    counts every weight of the model (grouped and free); the norm ratio is over the grouped
    ones."""
    params = structure.prunable_parameters()
    every = params + [p for _, p in structure.free]
    if not params:
        nonzero = sum(p.count_nonzero() for p in every).item() if every else 0
        return {"weight_sparsity": 1 - nonzero / max(sum(p.numel() for p in every), 1),
                "group_sparsity": 0.0, "remaining_params": 1.0, "remaining_flops": 1.0,
                "norm_ratio": 0.0, "layer_group_sparsity": {}}
    alive = [g.alive() for g in structure.groups]
    stats = torch.stack([
        sum(p.count_nonzero() for p in every).to(torch.float64),
        sum(p.detach().double().square().sum() for p in params).sqrt(),
        sum(p.detach().double().abs().sum() for p in params),
        *[a.sum().to(torch.float64) for a in alive],
    ]).tolist()
    nonzero, l2, l1, *alive_counts = stats
    total_weights = sum(p.numel() for p in every)
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
