"""Points of weight space as state dicts, and the same points as flat parameter vectors.

Mixing states (a path, a curve) takes ``Σ c_i·w_i`` of every floating-point tensor; integer
buffers (BatchNorm's ``num_batches_tracked``) come from the state with the largest coefficient.
Mixed BatchNorm running statistics mean nothing, so callers re-estimate them
(:func:`pruning.valley.batchnorm.reestimate_batchnorm`). Flat vectors cover the *trainable
parameters* only (``requires_grad``, in ``named_parameters`` order); everything else of a point
comes from a base state.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

State = dict[str, Tensor]


def trainable_names(model: nn.Module) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad]


def check_states(model: nn.Module, **states: State | None) -> None:
    """Each given state has exactly the model's keys and shapes; ValueError names the first
    mismatch (e.g. a physically compacted model instead of the zero-masked sDprun weights)."""
    expected = {key: tuple(t.shape) for key, t in model.state_dict().items()}
    for label, state in states.items():
        if state is None:
            continue
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        if missing or extra:
            raise ValueError(f"{label}: state dict does not fit the model (missing {missing[:3]}, "
                             f"unexpected {extra[:3]})")
        for key, shape in expected.items():
            if tuple(state[key].shape) != shape:
                raise ValueError(f"{label}: {key} has shape {tuple(state[key].shape)}, the model "
                                 f"expects {shape}")


def to_device(state: State, device: torch.device | str) -> State:
    """A private copy on ``device``: a state dict may alias the template model's own tensors,
    which loading another state would overwrite."""
    return {key: value.detach().to(device, copy=True) for key, value in state.items()}


def mix(states: Sequence[State], coefficients: Sequence[float]) -> State:
    """``Σ c_i·state_i`` per floating tensor. Terms with c_i = 0 are left out, so a coefficient
    vector (…, 0, 1, 0, …) returns that state's tensors bit for bit (the path ends reproduce the
    endpoints exactly)."""
    if len(states) != len(coefficients) or not states:
        raise ValueError("mix: one coefficient per state, at least one state")
    lead = max(range(len(states)), key=lambda i: coefficients[i])
    result = {}
    for key, first in states[0].items():
        if not first.is_floating_point():
            result[key] = states[lead][key].clone()
            continue
        total = None
        for state, c in zip(states, coefficients, strict=True):
            if c == 0:
                continue
            term = state[key] * c if c != 1 else state[key].clone()
            total = term if total is None else total.add_(term)
        result[key] = total if total is not None else torch.zeros_like(first)
    return result


def flatten(state: State, names: Sequence[str], dtype: torch.dtype = torch.float64) -> Tensor:
    """The named tensors of ``state`` as one 1-D vector of ``dtype``, on their device."""
    return torch.cat([state[name].reshape(-1).to(dtype) for name in names])


def with_parameters(base: State, vector: Tensor, names: Sequence[str]) -> State:
    """A copy of ``base`` whose named tensors are cut from ``vector`` (cast to their dtype and
    device); the inverse of :func:`flatten` for those names."""
    result = dict(base)
    offset = 0
    for name in names:
        like = base[name]
        size = like.numel()
        result[name] = vector[offset:offset + size].reshape(like.shape).to(like.device, like.dtype)
        offset += size
    if offset != vector.numel():
        raise ValueError(f"vector has {vector.numel()} entries, the parameters {offset}")
    return result
