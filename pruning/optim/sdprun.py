"""sDprun (Li et al., arXiv 2107.05328): gRDA's accumulator and threshold, shrinking whole groups.

For every group G (one output filter or neuron with everything coupled to it)::

    w_G = v_G · max(0, 1 − λ_n · √|G| / ‖v_G‖₂)

A param group describes its groups with ``units``: a list of index lists into its ``params``;
the tensors named by one index list are tied along dim 0, and row i of each of them together
forms one group (e.g. conv weight[i], bias[i], the next BatchNorm's γ[i] and β[i]). Without
``units`` every tensor is its own set of row groups. ``pruning.build_groups(model)`` builds these
param groups for a model.
"""

from __future__ import annotations

import math

import torch

from pruning.optim.dual_averaging import DualAveraging


class SDprun(DualAveraging):
    """Structured directional pruning by group-sparse dual averaging.

    Args:
        params: param-group dicts as made by ``GroupStructure.param_groups()`` (or plain tensors,
            each then grouped by rows); a group with ``prune=False`` is not thresholded.
        lr: step size γ, as for plain SGD without momentum.
        c: threshold scale (0 < c ≤ 0.005 typical; larger prunes earlier).
        mu: threshold growth exponent in (0, 1) (0.501–0.65 typical; larger prunes more).
        foreach: force (True) or forbid (False) the multi-tensor path; None picks it on CUDA.
    """

    def __init__(self, params, lr: float = 0.1, c: float = 0.005, mu: float = 0.51,
                 foreach: bool | None = None):
        super().__init__(params, lr=lr, c=c, mu=mu, foreach=foreach)
        for group in self.param_groups:
            _check_units(group)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        _check_units(self.param_groups[-1])

    def _shrink(self, group, params, accumulators, threshold, foreach):
        units = group.get("units") or [[i] for i in range(len(params))]
        factors = [_unit_factors([accumulators[i] for i in tied], threshold) for tied in units]
        if foreach:
            tensors = [i for tied in units for i in tied]
            scaled = torch._foreach_mul(
                [accumulators[i] for i in tensors],
                [_broadcastable(f, accumulators[i]) for tied, f in zip(units, factors, strict=True)
                 for i in tied])
            torch._foreach_copy_([params[i] for i in tensors], scaled)
        else:
            for tied, f in zip(units, factors, strict=True):
                for i in tied:
                    torch.mul(accumulators[i], _broadcastable(f, accumulators[i]), out=params[i])


def unit_norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    """‖v_G‖₂ for every row group of tensors tied along dim 0."""
    rows = tensors[0].shape[0]
    squares = sum(torch.linalg.vector_norm(t.reshape(rows, -1), dim=1).square() for t in tensors)
    return squares.sqrt()


def _unit_factors(tensors: list[torch.Tensor], threshold: float) -> torch.Tensor:
    group_size = sum(t[0].numel() for t in tensors)
    norms = unit_norms(tensors)
    # A group at or under the threshold becomes exactly zero (1 − 1 = 0, and 0/0 cannot occur
    # because an all-zero group divides by the smallest normal number).
    scale = threshold * math.sqrt(group_size)
    return (1 - scale / norms.clamp_min(torch.finfo(norms.dtype).tiny)).clamp_min_(0)


def _broadcastable(factors: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return factors.view(-1, *([1] * (like.dim() - 1)))


def _check_units(group: dict) -> None:
    units = group.get("units")
    if not units:
        return
    params = group["params"]
    for tied in units:
        if not tied or any(not 0 <= i < len(params) for i in tied):
            raise ValueError(f"Invalid units entry {tied!r}: indices must be in [0, {len(params)})")
        rows = {params[i].shape[0] for i in tied}
        if len(rows) != 1:
            raise ValueError(f"Invalid units entry {tied!r}: tied tensors must share dim 0, "
                             f"got sizes {sorted(rows)}")
