"""sDprun (Li et al., arXiv 2107.05328): gRDA's accumulator and threshold, shrinking whole groups.

For every group G (one output filter or neuron with everything coupled to it)::

    w_G = v_G · max(0, 1 − λ_n · √|G| / ‖v_G‖₂)

A param group describes its groups with ``units``: a list of index lists into its ``params``;
the tensors named by one index list are tied along dim 0, and row i of each of them together
forms one group (e.g. conv weight[i], bias[i], the next BatchNorm's γ[i] and β[i]). Without
``units`` every tensor is its own set of row groups. ``pruning.build_groups(model)`` builds these
param groups for a model.

An optional ``norm_units`` (one index list per ``units`` entry, each a subset of it) sizes the
shrinkage of a group on those tensors alone: w_G = v_G · max(0, 1 − λ_n · √|N| / ‖v_N‖₂) with N the
group's part in them (an empty list: the whole group). With N the γ, β of a BatchNorm this is the
``batchnorm`` group weighting: BatchNorm makes the loss blind to the scale of the conv weights
before it, so their norm carries no signal about whether the filter is needed, while at
initialisation it dominates √|G| (docs/methods.md, "Group weighting under BatchNorm").
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
        self._scales: dict[int, torch.Tensor] = {}
        super().__init__(params, lr=lr, c=c, mu=mu, foreach=foreach)
        for group in self.param_groups:
            _check_units(group)

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._scales.clear()  # the groups are new dicts now

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        _check_units(self.param_groups[-1])

    def _shrink(self, group, params, accumulators, threshold, foreach):
        units = group.get("units") or [[i] for i in range(len(params))]
        sized = [part or tied for tied, part in
                 zip(units, group.get("norm_units") or [[]] * len(units), strict=True)]
        # One chain over the units of every layer at once: on small models the step is all
        # per-operation overhead, so the per-layer work is kept to the row norms.
        squares = [unit_square_norms([accumulators[i] for i in part]) for part in sized]
        norms = torch.cat(squares).sqrt_()
        scale = self._threshold_scale(group, sized, accumulators, norms) * threshold
        factors = (1 - scale / norms.clamp_min_(torch.finfo(norms.dtype).tiny)).clamp_min_(0)
        factors = factors.split([len(s) for s in squares])
        tensors = [i for tied in units for i in tied]
        shaped = [_broadcastable(f, accumulators[i])
                  for tied, f in zip(units, factors, strict=True) for i in tied]
        if foreach:
            targets = [params[i] for i in tensors]
            torch._foreach_copy_(targets, [accumulators[i] for i in tensors])
            torch._foreach_mul_(targets, shaped)
        else:
            for i, f in zip(tensors, shaped, strict=True):
                torch.mul(accumulators[i], f, out=params[i])

    def _threshold_scale(self, group, units, accumulators, like) -> torch.Tensor:
        """√|G| of every unit (over the tensors that size it), in unit order; shapes never
        change, so it is built once."""
        cached = self._scales.get(id(group))
        if (cached is None or cached.shape != like.shape or cached.device != like.device
                or cached.dtype != like.dtype):
            sizes = [torch.full((accumulators[tied[0]].shape[0],),
                                math.sqrt(sum(accumulators[i][0].numel() for i in tied)),
                                dtype=like.dtype, device=like.device)
                     for tied in units]
            cached = self._scales[id(group)] = torch.cat(sizes)
        return cached


def unit_square_norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    """‖v_G‖₂² for every row group of tensors tied along dim 0."""
    rows = tensors[0].shape[0]
    total = None
    for t in tensors:
        square = (t.square() if t.dim() == 1
                  else torch.linalg.vector_norm(t.reshape(rows, -1), dim=1).square_())
        total = square if total is None else total.add_(square)
    return total


def unit_norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    """‖v_G‖₂ for every row group of tensors tied along dim 0."""
    return unit_square_norms(tensors).sqrt_()


def _broadcastable(factors: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return factors.view(-1, *([1] * (like.dim() - 1)))


def _check_units(group: dict) -> None:
    units = group.get("units")
    if not units:
        if group.get("norm_units"):
            raise ValueError("norm_units needs units")
        return
    norm_units = group.get("norm_units")
    if norm_units is not None and (len(norm_units) != len(units) or any(
            not set(part) <= set(tied) for tied, part in zip(units, norm_units, strict=True))):
        raise ValueError("Invalid norm_units: one index list per units entry, each a subset of "
                         "it")
    params = group["params"]
    for tied in units:
        if not tied or any(not 0 <= i < len(params) for i in tied):
            raise ValueError(f"Invalid units entry {tied!r}: indices must be in [0, {len(params)})")
        rows = {params[i].shape[0] for i in tied}
        if len(rows) != 1:
            raise ValueError(f"Invalid units entry {tied!r}: tied tensors must share dim 0, "
                             f"got sizes {sorted(rows)}")
