"""Physical removal of zero groups: the compact network computes what the pruned one does.

A unit (filter or neuron) is *dead* when every row of its coupled group is exactly zero: the
producer's weight row and bias and the γ, β of each BatchNorm on its channel. In eval mode it then
emits exactly zero (``γ·(x − μ)/√(σ²+ε) + β = 0`` for any x), so removing its rows and the matching
input slices of every consumer leaves the outputs unchanged. torch-pruning's dependency graph
finds the coupled layers, including channels tied by residual additions: such a channel is removed
only when it is dead in every layer of its group, else kept. The classifier's outputs are kept.

A unit whose producer weight row is zero but whose bias or β is not emits a constant ``c`` (in
eval mode ``γ·(b − μ)/√(σ²+ε) + β``), carried through the channel-wise operations between it and
its consumers (see pruning.groups). A consumer ``y = W x + b`` then receives ``W[:, u]·c``, the
same at every output position when it is a Linear or a convolution without padding; that term is
added to the consumer's bias (folded) and the unit becomes dead. With zero padding the channel is
``c`` inside and 0 in the border, so the term differs near the border and such a unit is kept.
"""

from __future__ import annotations

import copy

import torch
import torch_pruning as tp
from torch import fx, nn

from pruning.compact.errors import CompactError
from pruning.compact.folding import fold_constant_units
from pruning.groups import GroupStructure, build_groups

_PRODUCERS = (nn.Conv2d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
# Autograd nodes that torch-pruning records as channel-wise ops and that map an all-zero channel
# to an all-zero channel. Any other op on a coupled path keeps the whole group.
_ZERO_PRESERVING_OPS = {
    "AddBackward0", "ReluBackward0", "ThresholdBackward0", "HardtanhBackward0",
    "LeakyReluBackward0", "GeluBackward0", "SiluBackward0", "TanhBackward0",
    "MaxPool2DWithIndicesBackward0", "AvgPool2DBackward0", "AdaptiveAvgPool2DBackward0",
    "AdaptiveMaxPool2DBackward0", "MeanBackward1", "TBackward0", "CloneBackward0",
    "ViewBackward0",
}
_PASS_TP_OPS = (tp.ops._ReshapeOp, tp.ops._ConcatOp, tp.ops._SplitOp, tp.ops._SliceOp,
                tp.ops._UnbindOp, tp.ops._ExpandOp)


def compact(model: nn.Module, structure: GroupStructure | None = None, *,
            input_shape: tuple[int, ...] | None = None) -> nn.Module:
    """A new module, in eval mode, without the dead units of ``model`` (which is left untouched).

    ``structure`` (default ``build_groups(model)``) names the groups whose constant-emitting units
    may be folded into their consumers; every producer is checked for dead units. ``input_shape``
    is one sample's shape, ``(C, H, W)``; by default it is guessed from the first layer (32×32
    for a convolutional network). The result keeps the model's attribute layout, so its
    ``forward`` runs unchanged, and it is checked against the original on a random batch.
    """
    if structure is None:
        structure = build_groups(model)
    result = copy.deepcopy(model).eval()
    shape = tuple(input_shape) if input_shape is not None else guess_input_shape(model)
    first = next(result.parameters())
    probe = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0),
                        dtype=first.dtype).to(first.device)
    fold_constant_units(result, structure, probe)
    _remove_dead_channels(result, probe[:1])
    _check_same_function(model, result, probe)
    return result


def guess_input_shape(model: nn.Module) -> tuple[int, ...]:
    first = next((m for m in model.modules() if isinstance(m, _PRODUCERS)), None)
    if isinstance(first, nn.Conv2d):
        return (first.in_channels, 32, 32)
    if isinstance(first, nn.Linear):
        return (first.in_features,)
    raise CompactError(f"cannot guess the input shape of {type(model).__name__}; "
                       f"pass input_shape")


def _remove_dead_channels(model: nn.Module, example: torch.Tensor) -> None:
    keep = _output_layers(model)
    with torch.enable_grad():  # torch-pruning traces through autograd
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=example,
                                                      verbose=False)
        plans = []
        for group in graph.get_all_groups(ignored_layers=keep,
                                          root_module_types=(nn.Conv2d, nn.Linear)):
            dead = _dead_roots(graph, group)
            root = group[0].dep.target.module
            if len(dead) == graph.get_out_channels(root):
                dead = dead[1:]  # a layer keeps one (dead, so harmless) unit: no zero-width tensors
            if dead:
                plans.append((root, group[0].dep.handler, dead))
        for root, handler, dead in plans:
            graph.get_pruning_group(root, handler, dead).prune(record_history=False)


@torch.no_grad()
def _dead_roots(graph: tp.DependencyGraph, group) -> list[int]:
    """Root indices whose rows are zero in every layer of ``group`` that emits them."""
    count = graph.get_out_channels(group[0].dep.target.module)
    dead = torch.ones(count, dtype=torch.bool)
    for item in group:
        dep = item.dep
        if not graph.is_out_channel_pruning_fn(dep.handler):
            continue
        module = dep.target.module
        if isinstance(module, _PASS_TP_OPS):
            continue
        if isinstance(module, tp.ops._ElementWiseOp):
            if str(module._grad_fn) not in _ZERO_PRESERVING_OPS:
                return []
            continue
        tensors = _emitting_tensors(module)
        if tensors is None:
            return []
        local = torch.tensor(item.idxs, dtype=torch.long)
        roots = torch.tensor(item.root_idxs, dtype=torch.long)
        zero = torch.stack([t.detach()[local].reshape(len(local), -1).eq(0).all(1).cpu()
                            for t in tensors]).all(0)
        # A root stays dead only if every local row it maps to is zero.
        alive_roots = roots[~zero]
        dead[alive_roots] = False
    return dead.nonzero().flatten().tolist()


def _emitting_tensors(module: nn.Module) -> list[torch.Tensor] | None:
    """The tensors whose rows must all be zero for the module to emit zero, or None for a
    module that cannot be trusted to (an unknown layer, a BatchNorm without γ and β)."""
    if isinstance(module, _PRODUCERS):
        return [module.weight] + ([module.bias] if module.bias is not None else [])
    if isinstance(module, _NORMS):
        return [module.weight, module.bias] if module.affine else None
    return None


def _output_layers(model: nn.Module) -> list[nn.Module]:
    """Producers whose output reaches the model's output without passing another producer."""
    try:
        traced = fx.symbolic_trace(model)
    except Exception as error:  # fx raises many kinds; all mean the same thing to the user
        raise CompactError(f"cannot trace {type(model).__name__} with torch.fx: {error}") from error
    modules = dict(model.named_modules())
    found = []
    for node in traced.graph.nodes:
        module = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(module, _PRODUCERS):
            continue
        stack, seen = list(node.users), set()
        while stack:
            user = stack.pop()
            if user in seen:
                continue
            seen.add(user)
            if user.op == "output":
                found.append(module)
                break
            if not (user.op == "call_module" and isinstance(modules.get(user.target), _PRODUCERS)):
                stack.extend(user.users)
    return found


@torch.no_grad()
def _check_same_function(original: nn.Module, result: nn.Module, probe: torch.Tensor) -> None:
    was_training = original.training
    try:
        expected = original.eval()(probe)
    finally:
        original.train(was_training)
    got = result(probe)
    # float32 sums in another order differ slightly; a wrong removal differs by O(the output).
    tolerance = 1e-9 if probe.dtype == torch.float64 else 1e-2
    scale = expected.abs().max().item() + 1e-12
    error = (got - expected).abs().max().item()
    if got.shape != expected.shape or not error <= tolerance * scale:
        raise CompactError(f"compacting {type(result).__name__} would change its outputs "
                           f"(max error {error:.3g} for outputs up to {scale:.3g}); "
                           f"an unsupported operation sits on a pruned channel")
