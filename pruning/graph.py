"""The model's channel dependencies, from one Torch-Pruning ``DependencyGraph``.

The training groups (``pruning.groups``), and through them the FLOPs/params cost model, and the
physical removal of dead channels (``pruning.compact.surgery``) all read channels from here, so
what sDprun prunes is exactly what compaction removes. Torch-Pruning traces the model through
autograd and ties together every layer whose channels must go together: a producer with its
BatchNorm and its consumers, every layer writing into a residual stream, a depthwise
convolution with its input channels, the slices of a concatenation.

A coupled group is *zeroable* when setting the rows of every tensor that emits its channels
(conv/linear weight and bias, BatchNorm γ and β) to zero makes each of its channels exactly zero
wherever it is read: every operation on the way must map a zero channel to a zero channel.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

PRODUCERS = (nn.Conv2d, nn.Linear)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
# Autograd nodes that Torch-Pruning records as channel-wise ops and that map an all-zero channel
# to an all-zero channel. Any other op on a coupled path leaves the whole group dense.
ZERO_PRESERVING_OPS = {
    "AddBackward0", "ReluBackward0", "ThresholdBackward0", "HardtanhBackward0",
    "LeakyReluBackward0", "GeluBackward0", "SiluBackward0", "TanhBackward0",
    "MaxPool2DWithIndicesBackward0", "AvgPool2DBackward0", "AdaptiveAvgPool2DBackward0",
    "AdaptiveMaxPool2DBackward0", "MeanBackward1", "TBackward0", "CloneBackward0",
    "ViewBackward0",
}
# Index bookkeeping only (reshape, concatenation, split, slice): values pass unchanged.
PASS_OPS = (tp.ops._ReshapeOp, tp.ops._ConcatOp, tp.ops._SplitOp, tp.ops._SliceOp,
            tp.ops._UnbindOp, tp.ops._ExpandOp)


class GraphError(ValueError):
    """Torch-Pruning cannot trace the model."""


def dependency_graph(model: nn.Module, input_shape: tuple[int, ...]) -> tp.DependencyGraph:
    """Trace ``model`` on one zero sample of ``input_shape`` (in eval mode, restored after)."""
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    example = torch.zeros(1, *input_shape, device=device, dtype=dtype)
    was_training = model.training
    try:
        model.eval()  # a BatchNorm refuses one value per channel in training mode
        with torch.enable_grad():  # Torch-Pruning traces through autograd
            return tp.DependencyGraph().build_dependency(model, example_inputs=example,
                                                         verbose=False)
    except Exception as error:  # tracing fails in many ways; all mean the same to the user
        raise GraphError(f"cannot trace {type(model).__name__} to find its channel "
                         f"dependencies: {type(error).__name__}: {error}") from error
    finally:
        model.train(was_training)


def output_layers(graph: tp.DependencyGraph) -> list[nn.Module]:
    """Producers whose output reaches the model's output without passing another producer:
    their channels are the model's outputs, never pruned."""
    found = []
    for module, node in graph.module2node.items():
        if not isinstance(module, PRODUCERS):
            continue
        stack, seen = [node], set()
        while stack:
            current = stack.pop()
            if not current.outputs:
                found.append(module)
                break
            for successor in current.outputs:
                if id(successor) not in seen and not isinstance(successor.module, PRODUCERS):
                    seen.add(id(successor))
                    stack.append(successor)
    return found


def emitting_tensors(module: nn.Module) -> list[torch.Tensor] | None:
    """The tensors whose rows must all be zero for ``module`` to emit zero, or None for a
    module that cannot be trusted to (an unknown layer, a BatchNorm without γ and β)."""
    if isinstance(module, PRODUCERS):
        return [module.weight] + ([module.bias] if module.bias is not None else [])
    if isinstance(module, NORMS):
        return [module.weight, module.bias] if module.affine else None
    return None


@dataclass
class Member:
    """One layer of a coupled group: it emits the group's channels (``emits``) or reads them."""

    module: nn.Module
    emits: bool
    idxs: list[int]
    root_idxs: list[int]


@dataclass
class Coupling:
    """One coupled group of channels, rooted at a producer, with why it may not be zeroed."""

    root: nn.Module
    channels: int
    members: list[Member]
    handler: object
    unsafe: str | None  # None: zeroing the emitting rows zeroes every channel exactly


def couplings(graph: tp.DependencyGraph, ignored: list[nn.Module]) -> Iterator[Coupling]:
    """Every coupled group rooted at a Conv2d or Linear that is not in ``ignored``."""
    for group in graph.get_all_groups(ignored_layers=ignored,
                                      root_module_types=PRODUCERS):
        root = group[0].dep.target.module
        members, unsafe = [], None
        for item in group:
            dep = item.dep
            module = dep.target.module
            emits = graph.is_out_channel_pruning_fn(dep.handler)
            if isinstance(module, PASS_OPS):
                continue
            if isinstance(module, tp.ops._ElementWiseOp):
                op = str(module._grad_fn)
                if emits and op not in ZERO_PRESERVING_OPS and unsafe is None:
                    unsafe = f"{op} sits on its channels and may turn a zero into a non-zero"
                continue
            if emits and emitting_tensors(module) is None and unsafe is None:
                unsafe = f"{type(module).__name__} on its channels cannot be set to emit zero"
            members.append(Member(module, emits, list(item.idxs), list(item.root_idxs)))
        yield Coupling(root, graph.get_out_channels(root), members, group[0].dep.handler, unsafe)
