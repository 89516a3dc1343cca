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
from torch import nn

from pruning.compact.errors import CompactError
from pruning.compact.folding import fold_constant_units
from pruning.graph import Coupling, GraphError, couplings, dependency_graph, emitting_tensors
from pruning.graph import output_layers as graph_outputs
from pruning.groups import GroupStructure, build_groups, guess_input_shape


def compact(model: nn.Module, structure: GroupStructure | None = None, *,
            input_shape: tuple[int, ...] | None = None) -> nn.Module:
    """A new module, in eval mode, without the dead units of ``model`` (which is left untouched).

    ``structure`` (default ``build_groups(model)``) names the groups whose constant-emitting units
    may be folded into their consumers; every producer is checked for dead units. ``input_shape``
    is one sample's shape, ``(C, H, W)``; by default it is guessed from the first layer (32×32
    for a convolutional network). The result keeps the model's attribute layout, so its
    ``forward`` runs unchanged, and it is checked against the original on a random batch.
    """
    shape = tuple(input_shape) if input_shape is not None else guess_input_shape(model)
    if structure is None:
        structure = build_groups(model, shape)
    result = copy.deepcopy(model).eval()
    first = next(result.parameters())
    probe = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0),
                        dtype=first.dtype).to(first.device)
    fold_constant_units(result, structure, probe)
    _remove_dead_channels(result, probe[:1])
    _check_same_function(model, result, probe)
    return result


def _remove_dead_channels(model: nn.Module, example: torch.Tensor) -> None:
    try:
        graph = dependency_graph(model, tuple(example.shape[1:]))
    except GraphError as error:
        raise CompactError(str(error)) from error
    plans = []
    for coupling in couplings(graph, ignored=graph_outputs(graph)):
        dead = [] if coupling.unsafe else _dead_roots(coupling)
        if len(dead) == coupling.channels:
            dead = dead[1:]  # a layer keeps one (dead, so harmless) unit: no zero-width tensors
        if dead:
            plans.append((coupling.root, coupling.handler, dead))
    for root, handler, dead in plans:
        graph.get_pruning_group(root, handler, dead).prune(record_history=False)


@torch.no_grad()
def _dead_roots(coupling: Coupling) -> list[int]:
    """Root indices whose rows are zero in every layer of the group that emits them."""
    dead = torch.ones(coupling.channels, dtype=torch.bool)
    for member in coupling.members:
        if not member.emits:
            continue
        tensors = emitting_tensors(member.module)
        local = torch.tensor(member.idxs, dtype=torch.long)
        roots = torch.tensor(member.root_idxs, dtype=torch.long)
        zero = torch.stack([t.detach()[local].reshape(len(local), -1).eq(0).all(1).cpu()
                            for t in tensors]).all(0)
        # A root stays dead only if every local row it maps to is zero.
        dead[roots[~zero]] = False
    return dead.nonzero().flatten().tolist()


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
