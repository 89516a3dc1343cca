"""The model's channel dependencies, from one Torch-Pruning ``DependencyGraph``.

The training groups (``pruning.groups``), and through them the FLOPs/params cost model, and the
physical removal of dead channels (``pruning.compact.surgery``) all read channels from here, so
what sDprun prunes is exactly what compaction removes. Torch-Pruning traces the model through
autograd and ties together every layer whose channels must go together: a producer with its
BatchNorm and its consumers, every layer writing into a residual stream, a depthwise
convolution with its input channels, the slices of a concatenation.

A coupled group is *zeroable* when setting the rows of every tensor that emits its channels
(conv/linear weight and bias, BatchNorm γ and β) to zero makes each of its channels exactly zero
wherever it is read: every operation on the way must map a zero channel to a zero channel. What
the graph cannot prove so leaves the group dense, with the reason (``Coupling.unsafe``):

- a LayerNorm on its channels normalises across them: a zeroed channel still moves the mean and
  variance the other channels are divided by;
- a parameter used directly in ``forward`` (a positional embedding added to the stream) is not a
  row of any layer, so zeroing the layers' rows leaves it non-zero;
- a matrix product or softmax over the channels (attention's q·kᵀ, scores·v) mixes them, and a
  transpose or permute moves the channel axis where Torch-Pruning cannot follow it;
- a grouped convolution (1 < groups, not depthwise) needs its groups to stay equal in size;
- a constant added to a channel (``x + 1``), or any op not known to keep zeros.

A depthwise convolution (one filter per channel) is no obstacle: it joins the group of its input
channels, its filter and BatchNorm rows are rows of the group.

Torch-Pruning records a Linear applied to a 3-D input (a transformer's tokens) as the Linear plus
its own matrix product as a separate element-wise op; that product is recognised by the Linear's
weight among its operands and is no obstacle: it is the consumer reading the channels.
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
# to an all-zero channel whatever their other operands are.
ZERO_PRESERVING_OPS = {
    "ReluBackward0", "LeakyReluBackward0", "GeluBackward0", "SiluBackward0", "TanhBackward0",
    "MaxPool2DWithIndicesBackward0", "AvgPool2DBackward0", "AdaptiveAvgPool2DBackward0",
    "AdaptiveMaxPool2DBackward0", "MeanBackward1", "CloneBackward0", "ViewBackward0",
    "MulBackward0",
}
# Zero-preserving when every operand is one of the group's channels (a residual x + f(x)), not
# when one is a constant (x + 1); division only by a constant (x / 2, not x / y).
SUMS = {"AddBackward0", "SubBackward0"}
MIXING_OPS = {"BmmBackward0", "MmBackward0", "AddmmBackward0", "SoftmaxBackward0",
              "LogSoftmaxBackward0"}
AXIS_OPS = {"TransposeBackward0", "PermuteBackward0", "TBackward0"}
# Index bookkeeping only (reshape, concatenation, split, slice): values pass unchanged.
SPLITTING_OPS = (tp.ops._SplitOp, tp.ops._SliceOp, tp.ops._UnbindOp)
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
            # Called as model(example): by default Torch-Pruning first tries model(*example),
            # which unpacks the batch axis and traces a Linear on one unbatched vector, with
            # its channels mis-mapped through the reshapes that adds.
            return tp.DependencyGraph().build_dependency(
                model, example_inputs=example, forward_fn=lambda net, x: net(x), verbose=False)
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
    names = {m: n for n, m in graph.model.named_modules()}
    names.update({p: n for n, p in graph.model.named_parameters()})
    for group in graph.get_all_groups(ignored_layers=ignored,
                                      root_module_types=PRODUCERS):
        root = group[0].dep.target.module
        members, problems = [], {}
        for item in group:
            dep = item.dep
            module = dep.target.module
            emits = graph.is_out_channel_pruning_fn(dep.handler)
            if isinstance(module, SPLITTING_OPS):
                # Compaction cannot keep a slice's bounds or a split's sizes in step with the
                # removed channels (found with ONNX-converted networks): left dense.
                problems.setdefault("its channels are sliced or split on the way", []).append(
                    type(module).__name__.strip("_").removesuffix("Op").lower())
                continue
            if isinstance(module, PASS_OPS):
                continue
            if isinstance(module, tp.ops._ElementWiseOp):
                problem = _op_problem(dep.target) if emits else None
                if problem:
                    problems.setdefault(problem, []).append(str(module._grad_fn))
                continue
            if (emits and emitting_tensors(module) is None) or _is_grouped(module):
                problems.setdefault(_layer_problem(module), []).append(names.get(module, "?"))
            members.append(Member(module, emits, list(item.idxs), list(item.root_idxs)))
        unsafe = "; ".join(f"{why} ({', '.join(dict.fromkeys(where))})"
                           for why, where in problems.items()) or None
        yield Coupling(root, graph.get_out_channels(root), members, group[0].dep.handler, unsafe)


def is_depthwise(module) -> bool:
    """A convolution with one filter per input channel: its channels are its input's."""
    return (isinstance(module, nn.Conv2d) and module.groups > 1
            and module.groups == module.in_channels == module.out_channels)


def _is_grouped(module) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups > 1 and not is_depthwise(module)


def _layer_problem(module) -> str:
    if _is_grouped(module):
        return ("a grouped convolution splits its channels into groups that must stay equal in "
                "size")
    if isinstance(module, nn.LayerNorm):
        return ("LayerNorm normalises across its channels: a zeroed channel still moves the "
                "mean and variance of the others")
    if isinstance(module, nn.Parameter):
        return ("a parameter used directly in forward acts on its channels: zeroing the layers' "
                "rows leaves it non-zero")
    return f"{type(module).__name__} on its channels cannot be set to emit zero"


def _op_problem(node) -> str | None:
    """Why the element-wise op at ``node`` may break the group's zeros, or None if it keeps
    them (``node.inputs``: its operands that the graph traced, constants are not among them)."""
    op, grad_fn = str(node.module._grad_fn), node.grad_fn
    if op in ZERO_PRESERVING_OPS:
        return None
    if op in SUMS and len(node.inputs) >= 2 or op == "DivBackward0" and len(node.inputs) == 1:
        return None
    if op == "HardtanhBackward0" and grad_fn._saved_min_val <= 0 <= grad_fn._saved_max_val:
        return None  # ReLU6 and friends
    if op == "ThresholdBackward0" and grad_fn._saved_threshold < 0:
        return None
    if op == "TBackward0" and not node.inputs:
        return None  # a Linear's weight transposed for its product, not an activation
    if op in ("AddmmBackward0", "MmBackward0") and _linear_product(node):
        return None
    if op in MIXING_OPS:
        return "a matrix product or softmax mixes its channels"
    if op in AXIS_OPS:
        return "a transpose moves its channel axis, where the graph cannot follow it"
    if op in SUMS or op == "DivBackward0":
        return "a constant is added to its channels or divides them"
    return "an operation on its channels may turn a zero into a non-zero"


def _linear_product(node) -> bool:
    """Whether ``node`` is the matrix product inside a Linear applied to an N-D input: its one
    successor is that Linear and the Linear's own weight, transposed, is one of its operands."""
    if len(node.outputs) != 1 or not isinstance(node.outputs[0].module, nn.Linear):
        return False
    weight = node.outputs[0].module.weight
    for function, _ in node.grad_fn.next_functions:
        if function is not None and function.name() == "TBackward0":
            leaf = function.next_functions[0][0]
            if getattr(leaf, "variable", None) is weight:
                return True
    return False
