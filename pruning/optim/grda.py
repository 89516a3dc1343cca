"""gRDA (Chao et al., NeurIPS 2020): dual averaging with an elementwise soft threshold.

    w_n = sign(v_n) · max(|v_n| − λ_n, 0)

which is exactly ``softshrink(v_n, λ_n)``, one fused kernel per tensor.
"""

from __future__ import annotations

import torch

from pruning.optim.dual_averaging import DualAveraging


class GRDA(DualAveraging):
    """Generalized regularized dual averaging.

    Args:
        params: tensors or param-group dicts; a group with ``prune=False`` is not thresholded.
        lr: step size γ, as for plain SGD without momentum.
        c: threshold scale (0 < c ≤ 0.005 typical; larger prunes earlier).
        mu: threshold growth exponent in (0, 1) (0.501–0.65 typical; larger prunes more).
        foreach: force (True) or forbid (False) the multi-tensor path; None picks it when possible.
    """

    def __init__(self, params, lr: float = 0.1, c: float = 0.005, mu: float = 0.51,
                 foreach: bool | None = None):
        super().__init__(params, lr=lr, c=c, mu=mu, foreach=foreach)

    def _shrink(self, group, params, accumulators, threshold, foreach):
        # Both paths: torch has no _foreach_softshrink, and emulating it with clamps makes
        # several passes and a temporary where softshrink makes one (bench/optimizer_step.py).
        for p, v in zip(params, accumulators, strict=True):
            torch.ops.aten.softshrink.out(v, threshold, out=p)
