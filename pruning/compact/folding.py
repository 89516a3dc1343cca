"""Folding the constant that a unit with zero weights still emits into its consumers' biases.

Unit u of a group whose producer weight row is zero emits, in eval mode, a value that does not
depend on the input: its bias, or ``γ·(b − μ)/√(σ²+ε) + β`` after its BatchNorm, then carried
through the channel-wise operations on the way to the consumers. That value is read where each
consumer receives it, on a probe batch, and the consumer's share is moved into its bias:

- Linear ``y = W x + b`` reading the unit at columns J: ``b += W[:, J] · x_J`` (the same for
  every sample and every token);
- Conv2d without padding: every output position sees the constant c under the whole kernel, so
  ``b += c · Σ_{kh,kw} W[:, u, kh, kw]``.

Then the unit's bias, γ and β are zeroed, so it emits 0 and the rest of the network computes the
same as before. The fold is done only where it is exact: every consumer foldable, and the value
the same for both probe samples (and, for a convolution, at every position of the channel).
"""

from __future__ import annotations

import torch
from torch import nn

from pruning.compact.errors import CompactError
from pruning.groups import GroupStructure, LayerGroup


@torch.no_grad()
def fold_constant_units(model: nn.Module, structure: GroupStructure,
                        probe: torch.Tensor) -> int:
    """Fold every foldable constant-emitting unit of ``model`` (names from ``structure``), in
    place; the number of units folded."""
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    plans = []
    for group in structure.groups:
        units = _constant_units(group, modules, params)
        if units:
            plans.append((group, units))
    if not plans:
        return 0
    inputs = _consumer_inputs(model, probe, {c.name for g, _ in plans for c in g.consumers})
    folded = 0
    for group, units in plans:
        for unit in units:
            terms = [_constant_term(modules[c.name], inputs.get(c.name), _columns(c, unit))
                     for c in group.consumers]
            if any(term is None for term in terms):
                continue
            for consumer, term in zip(group.consumers, terms, strict=True):
                _bias_of(modules[consumer.name]).add_(term)
            for name, _ in group.params:  # the producer's weight row is zero already
                params[name][unit] = 0
            folded += 1
    return folded


def _constant_units(group: LayerGroup, modules: dict, params: dict) -> list[int]:
    """Units whose producer weight row is zero while the rest of their group is not."""
    producer = modules.get(group.name)
    if producer is None:
        raise CompactError(f"the group structure names layer {group.name!r}, which the model "
                           f"does not have")
    weight = producer.weight.detach()
    zero_weight = weight.reshape(weight.shape[0], -1).eq(0).all(1)
    rows = [params[name].detach() for name, _ in group.params]
    alive = torch.stack([r.reshape(r.shape[0], -1).ne(0).any(1) for r in rows]).any(0)
    return (zero_weight & alive).nonzero().flatten().tolist()


def _consumer_inputs(model: nn.Module, probe: torch.Tensor, names: set[str]) -> dict:
    """The input each named module receives on ``probe``; a module called more than once (shared
    weights) is left out, as its input is not one thing."""
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in names}

    def hook(name):
        def record(module, args):
            seen[name].append(args[0].detach())
        return record

    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_pre_hook(hook(name)) for name in names]
    try:
        model(probe)
    finally:
        for handle in handles:
            handle.remove()
    return {name: values[0] for name, values in seen.items() if len(values) == 1}


def _columns(consumer, unit: int) -> list[int]:
    """The consumer's input channels that carry ``unit`` (offset after a concatenation)."""
    if consumer.columns:
        return list(consumer.columns[unit])
    per_unit = consumer.inputs_per_unit
    return list(range(unit * per_unit, (unit + 1) * per_unit))


def _constant_term(module: nn.Module, inputs: torch.Tensor | None,
                   columns: list[int]) -> torch.Tensor | None:
    """What the constant unit read at ``columns`` adds to each of ``module``'s outputs, or None
    if not exact."""
    if inputs is None or not columns:
        return None
    if isinstance(module, nn.Linear):
        # Features are the last axis; every sample (and token, for a transformer's Linear on
        # (batch, tokens, features)) must see the same constant.
        values = inputs[..., columns].reshape(-1, len(columns))
        if not (values == values[:1]).all() or not values.isfinite().all():
            return None
        return module.weight.detach()[:, columns] @ values[0]
    if (isinstance(module, nn.Conv2d) and module.groups == 1 and _no_padding(module)
            and len(columns) == 1):
        channel = inputs[:, columns[0]]
        value = channel.reshape(-1)[0]
        if not (channel == value).all() or not value.isfinite():
            return None
        return module.weight.detach()[:, columns[0]].sum((1, 2)) * value
    return None


def _no_padding(conv: nn.Conv2d) -> bool:
    return conv.padding == "valid" or all(p == 0 for p in conv.padding)


def _bias_of(module: nn.Module) -> torch.Tensor:
    if module.bias is None:
        weight = module.weight
        module.bias = nn.Parameter(torch.zeros(weight.shape[0], dtype=weight.dtype,
                                               device=weight.device))
    return module.bias.detach()
