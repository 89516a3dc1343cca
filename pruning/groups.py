"""Structured groups: which rows of which tensors make one prunable unit.

The groups come from the model's channel dependencies (``pruning.graph``, one Torch-Pruning
dependency graph). A unit is one channel of a coupled group: row i of every tensor that emits
that channel. For a plain conv with its BatchNorm that is one output filter's weights, its bias and
the BatchNorm's γ, β; for a residual stream it spans every conv and BatchNorm that writes into or
normalises the stream (the stem, every block's last conv, the shortcut convs); a depthwise
convolution joins the group of its input channels. Zeroing a unit makes its channel emit exactly
zero wherever it is read, so pruning never changes what the rest of the network computes:

- every operation on a coupled path must map a zero channel to zero (ReLU-like activations,
  pooling, additions of coupled channels, reshapes); a group with any other op, a LayerNorm, a
  grouped convolution, a parameter used directly in forward, or attention's matrix products and
  softmax on it stays dense (see pruning.graph). In a transformer that leaves the MLPs' hidden
  neurons (Linear -> GELU -> Linear) prunable; the residual stream (LayerNorm) and q/k/v stay
  dense;
- a concatenation only offsets the channels its consumers read (``Consumer.columns``);
- a producer whose output reaches the model's output (the classifier) is never pruned;
- a group whose channels are re-indexed on the way to an emitting layer (a concatenation feeding
  a BatchNorm) stays dense: its rows would not line up.

Everything outside the groups is *free*, trained by plain dual averaging (sDprun) or thresholded
weight by weight (gRDA). ``GroupStructure.dense`` says which layers stayed dense and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from pruning.graph import (
    NORMS,
    PRODUCERS,
    GraphError,
    couplings,
    dependency_graph,
    emitting_tensors,
    is_depthwise,
    output_layers,
)
from pruning.optim.sdprun import unit_norms


@dataclass(frozen=True)
class Consumer:
    """A layer that reads a group's units: ``inputs_per_unit`` input features per unit (>1 after
    a flatten, where one channel becomes H·W features of a Linear). ``columns[u]``: the input
    channels (features) that carry unit u, which after a concatenation sit at an offset."""

    name: str
    module: nn.Module
    inputs_per_unit: int
    columns: tuple[tuple[int, ...], ...] = ()


@dataclass
class LayerGroup:
    """The row groups of one coupled set of layers: unit i is row i of every tensor in
    ``params``. ``name`` and ``module`` are its first producer; ``producers`` lists every conv
    or linear layer that emits its channels, ``norm_layers`` every BatchNorm on them."""

    name: str
    module: nn.Module
    norm_name: str | None
    params: list[tuple[str, nn.Parameter]]
    consumers: list[Consumer] = field(default_factory=list)
    producers: list[str] = field(default_factory=list)
    norm_layers: list[str] = field(default_factory=list)

    @property
    def num_units(self) -> int:
        return self.params[0][1].shape[0]

    @property
    def unit_size(self) -> int:
        """|G|: the number of weights in one unit's group."""
        return sum(p[0].numel() for _, p in self.params)

    @property
    def norm_params(self) -> list[tuple[str, nn.Parameter]]:
        """The γ and β of every BatchNorm on the group's channels."""
        owners = set(self.norm_layers)
        return [(n, p) for n, p in self.params if n.rpartition(".")[0] in owners]

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
    # (layer names, why): coupled channels that stayed dense, for the start event.
    dense: list[tuple[list[str], str]] = field(default_factory=list)

    def prunable_parameters(self) -> list[nn.Parameter]:
        return [p for g in self.groups for _, p in g.params]

    def param_groups(self, weighting: str = "elements") -> list[dict]:
        """Optimizer param groups: one holding every group with its ``units`` (see SDprun) and
        one for the free parameters with ``prune=False``. With ``weighting="batchnorm"`` each
        unit also names its BatchNorm tensors (``norm_units``), whose norm alone sets the
        shrinkage of a group that has them."""
        params, units, norm_units = [], [], []
        for group in self.groups:
            first = len(params)
            units.append(list(range(first, first + len(group.params))))
            norm_ids = {id(p) for _, p in group.norm_params}
            norm_units.append([first + i for i, (_, p) in enumerate(group.params)
                               if id(p) in norm_ids])
            params.extend(p for _, p in group.params)
        result = []
        if params:
            entry = {"params": params, "units": units}
            if weighting == "batchnorm":
                entry["norm_units"] = norm_units
            result.append(entry)
        if self.free:
            result.append({"params": [p for _, p in self.free], "prune": False})
        return result

    def prunable_share(self) -> float:
        """Fraction of the convolution weights (4-d tensors) that sit in prunable groups."""
        grouped = sum(p.numel() for p in self.prunable_parameters() if p.dim() == 4)
        total = grouped + sum(p.numel() for _, p in self.free if p.dim() == 4)
        return grouped / total if total else 0.0


class GroupingError(ValueError):
    pass


def build_groups(model: nn.Module, input_shape: tuple[int, ...] | None = None,
                 exclude: tuple[str, ...] = (), *, coupled: bool = True) -> GroupStructure:
    """Find the structured groups of ``model`` for one sample of ``input_shape`` (by default
    guessed from its first layer). Groups holding a layer named in ``exclude`` (or under a
    module so named) stay dense; with ``coupled=False`` (the baselines, which rank one layer's
    filters) so do groups spanning more than one conv or linear layer."""
    shape = tuple(input_shape) if input_shape is not None else guess_input_shape(model)
    try:
        graph = dependency_graph(model, shape)
    except GraphError as error:
        raise GroupingError(str(error)) from error
    names = {module: name for name, module in model.named_modules()}
    # A parameter used directly in forward (a positional embedding) is a member of its group.
    names.update({p: name for name, p in model.named_parameters()})
    order = {name: i for i, name in enumerate(names.values())}
    outputs = output_layers(graph)
    groups, dense = [], [([names[m] for m in outputs], "its outputs are the model's outputs")]
    for coupling in couplings(graph, ignored=outputs):
        group, reason = _group_of(coupling, names, order, exclude, coupled)
        if group is not None:
            groups.append(group)
        else:
            dense.append(([names[m.module] for m in coupling.members if m.emits], reason))
    groups.sort(key=lambda g: order[g.name])  # in the model's own layer order
    grouped = {id(p) for g in groups for _, p in g.params}
    free = [(n, p) for n, p in model.named_parameters() if id(p) not in grouped]
    return GroupStructure(groups=groups, free=free, dense=[d for d in dense if d[0]])


def _group_of(coupling, names: dict, order: dict, exclude: tuple[str, ...], coupled: bool
              ) -> tuple[LayerGroup | None, str]:
    emitting = sorted((m for m in coupling.members if m.emits),
                      key=lambda m: order[names[m.module]])
    producers = [names[m.module] for m in emitting if isinstance(m.module, PRODUCERS)]
    excluded = [name for name in (names[m.module] for m in emitting) if is_excluded(name, exclude)]
    if coupling.unsafe:
        return None, coupling.unsafe
    if excluded:
        return None, f"excluded by the job ({', '.join(excluded)})"
    # A depthwise convolution's filters belong to its input channels: with them, still one
    # layer's units.
    independent = [m for m in emitting if isinstance(m.module, PRODUCERS)
                   and not is_depthwise(m.module)]
    if not coupled and len(independent) > 1:
        return None, (f"its channels are coupled across {len(independent)} layers; this method "
                      f"prunes one layer's units at a time")
    everything = list(range(coupling.channels))
    if any(m.idxs != everything or m.root_idxs != everything
           or any(t.shape[0] != coupling.channels for t in emitting_tensors(m.module))
           for m in emitting):
        return None, "its channels are re-indexed on the way (a concatenation or a split)"
    params, seen = [], set()
    for member in emitting:
        if id(member.module) in seen:
            continue
        seen.add(id(member.module))
        name = names[member.module]
        tensors = emitting_tensors(member.module)
        params += [(f"{name}.{kind}", t) for kind, t in zip(("weight", "bias"), tensors,
                                                              strict=False)]
    consumers = [_consumer(names[m.module], m.module, m, coupling.channels)
                 for m in coupling.members
                 if not m.emits and isinstance(m.module, PRODUCERS)
                 and id(m.module) not in seen]
    norms = [names[m.module] for m in emitting if isinstance(m.module, NORMS)]
    first = next(m.module for m in emitting if isinstance(m.module, PRODUCERS))
    return LayerGroup(name=names[first], module=first,
                      norm_name=norms[0] if len(producers) == 1 and norms else None,
                      params=params, consumers=consumers, producers=producers,
                      norm_layers=list(dict.fromkeys(norms))), ""


def _consumer(name: str, module: nn.Module, member, units: int) -> Consumer:
    columns = [[] for _ in range(units)]
    for local, root in zip(member.idxs, member.root_idxs, strict=True):
        columns[root].append(local)
    return Consumer(name, module, max(len(member.idxs) // units, 1),
                    tuple(tuple(sorted(c)) for c in columns))


def guess_input_shape(model: nn.Module) -> tuple[int, ...]:
    first = next((m for m in model.modules() if isinstance(m, PRODUCERS)), None)
    if isinstance(first, nn.Conv2d):
        return (first.in_channels, 32, 32)
    if isinstance(first, nn.Linear):
        return (first.in_features,)
    raise GroupingError(f"cannot guess the input shape of {type(model).__name__}; "
                        f"pass input_shape")


def is_excluded(name: str, exclude: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in exclude)
