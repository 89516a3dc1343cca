"""Structured groups: which rows of which tensors make one prunable unit.

For a Conv2d, one group per output filter: its weights, its bias and the γ, β of a BatchNorm that
reads only its output. For a Linear, one group per output neuron in the same way. A unit belongs to
a group only when zeroing the group makes the unit emit exactly zero all the way to every layer that
reads it, so pruning never changes what the rest of the network computes:

- the path from the producer (or its BatchNorm) to its consumers may only pass through
  zero-preserving, channel-wise operations (ReLU-like activations, pooling, dropout, flatten);
- an addition (residual connection), concatenation, or a BatchNorm on that path leaves the
  producer out: its channels are tied to others, or its zero would become a nonzero constant;
- a producer whose output reaches the model's output (the classifier) is never pruned.

The model is traced with ``torch.fx`` to follow those paths, so the rule holds for any traceable
model, not just the registered ones. Everything left out is a *free* parameter, trained by plain
dual averaging.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from pruning.optim.sdprun import unit_norms

_PRODUCERS = (nn.Conv2d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
# Modules and functions that act on each channel separately and map 0 to 0.
_PASS_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Hardtanh, nn.Identity,
    nn.Dropout, nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d, nn.Flatten,
)
_PASS_FUNCTIONS = {
    torch.relu, F.relu, F.relu6, F.leaky_relu, F.gelu, F.silu, torch.tanh, F.dropout,
    F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, torch.flatten,
}
_PASS_METHODS = {"relu", "relu_", "flatten", "contiguous"}


@dataclass(frozen=True)
class Consumer:
    """A layer that reads a group's units: ``inputs_per_unit`` input features per unit (>1 after
    a flatten, where one channel becomes H·W features of a Linear)."""

    name: str
    module: nn.Module
    inputs_per_unit: int


@dataclass
class LayerGroup:
    """The row groups of one producing layer: unit i is row i of every tensor in ``params``."""

    name: str
    module: nn.Module
    norm_name: str | None
    params: list[tuple[str, nn.Parameter]]
    consumers: list[Consumer] = field(default_factory=list)

    @property
    def num_units(self) -> int:
        return self.params[0][1].shape[0]

    @property
    def unit_size(self) -> int:
        """|G|: the number of weights in one unit's group."""
        return sum(p[0].numel() for _, p in self.params)

    @torch.no_grad()
    def norms(self) -> torch.Tensor:
        return unit_norms([p for _, p in self.params])

    @torch.no_grad()
    def alive(self) -> torch.Tensor:
        """Boolean mask of units that still have a nonzero weight."""
        rows = self.num_units
        return torch.stack([p.reshape(rows, -1).ne(0).any(1) for _, p in self.params]).any(0)


@dataclass
class GroupStructure:
    groups: list[LayerGroup]
    free: list[tuple[str, nn.Parameter]]

    def prunable_parameters(self) -> list[nn.Parameter]:
        return [p for g in self.groups for _, p in g.params]

    def param_groups(self) -> list[dict]:
        """Optimizer param groups: one holding every group with its ``units`` (see SDprun) and
        one for the free parameters with ``prune=False``."""
        params, units = [], []
        for group in self.groups:
            units.append(list(range(len(params), len(params) + len(group.params))))
            params.extend(p for _, p in group.params)
        result = []
        if params:
            result.append({"params": params, "units": units})
        if self.free:
            result.append({"params": [p for _, p in self.free], "prune": False})
        return result


class GroupingError(ValueError):
    pass


def build_groups(model: nn.Module, exclude: tuple[str, ...] = ()) -> GroupStructure:
    """Find the structured groups of ``model``; layers named in ``exclude`` (or under a module
    so named) stay free."""
    try:
        traced = fx.symbolic_trace(model)
    except Exception as error:  # fx raises many kinds; all mean the same thing to the user
        raise GroupingError(f"cannot trace {type(model).__name__} with torch.fx to find its "
                            f"groups: {error}") from error
    modules = dict(model.named_modules())
    groups = []
    for node in traced.graph.nodes:
        module = _module_of(node, modules)
        if not isinstance(module, _PRODUCERS) or _excluded(node.target, exclude):
            continue
        if isinstance(module, nn.Conv2d) and module.groups != 1:
            continue
        group = _group_for(node, module, modules)
        if group is not None:
            groups.append(group)
    grouped = {id(p) for g in groups for _, p in g.params}
    free = [(n, p) for n, p in model.named_parameters() if id(p) not in grouped]
    return GroupStructure(groups=groups, free=free)


def _group_for(node: fx.Node, module: nn.Module, modules: dict) -> LayerGroup | None:
    units = module.weight.shape[0]
    params = [(f"{node.target}.weight", module.weight)]
    if module.bias is not None:
        params.append((f"{node.target}.bias", module.bias))
    norm_name, start = None, node
    users = list(node.users)
    if len(users) == 1:
        norm = _module_of(users[0], modules)
        if isinstance(norm, _NORMS) and norm.num_features == units and norm.affine:
            norm_name, start = users[0].target, users[0]
            params += [(f"{norm_name}.weight", norm.weight), (f"{norm_name}.bias", norm.bias)]
    consumers = _consumers(start, units, modules)
    if not consumers:
        return None
    return LayerGroup(name=node.target, module=module, norm_name=norm_name, params=params,
                      consumers=consumers)


def _consumers(start: fx.Node, units: int, modules: dict) -> list[Consumer] | None:
    """Every producer layer reached from ``start`` through pass-through operations, or None if
    some path leaves the unit's zero unsafe (residual add, output, unknown operation)."""
    found, stack, seen = [], [start], set()
    while stack:
        node = stack.pop()
        for user in node.users:
            if user in seen:
                continue
            seen.add(user)
            module = _module_of(user, modules)
            if isinstance(module, _PRODUCERS):
                consumer = _as_consumer(user, module, units)
                if consumer is None:
                    return None
                found.append(consumer)
            elif _passes_zero_through(user, module):
                stack.append(user)
            else:
                return None
    return found


def _as_consumer(node: fx.Node, module: nn.Module, units: int) -> Consumer | None:
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or module.in_channels != units:
            return None
        return Consumer(node.target, module, 1)
    if module.in_features % units:
        return None
    return Consumer(node.target, module, module.in_features // units)


def _passes_zero_through(node: fx.Node, module: nn.Module | None) -> bool:
    if node.op == "call_module":
        if isinstance(module, nn.Flatten):
            return module.start_dim == 1
        return isinstance(module, _PASS_MODULES)
    if node.op == "call_function":
        if node.target is torch.flatten:
            return _flattens_after_channels(node)
        return node.target in _PASS_FUNCTIONS
    if node.op == "call_method":
        if node.target == "flatten":
            return _flattens_after_channels(node)
        return node.target in _PASS_METHODS
    return False


def _flattens_after_channels(node: fx.Node) -> bool:
    start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0)
    return start == 1


def _module_of(node: fx.Node, modules: dict) -> nn.Module | None:
    return modules.get(node.target) if node.op == "call_module" else None


def _excluded(name: str, exclude: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in exclude)
