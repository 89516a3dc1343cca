"""BatchNorm running statistics re-estimated for the weights at hand.

A point between two trained networks (or anywhere on a plane) has no running statistics of its
own: mixing the endpoints' statistics gives nonsense (the "variance collapse" of interpolated
networks). So every point is evaluated after re-estimating them on training inputs, as in
Garipov et al. (2018) and Frankle et al. (2020).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


@torch.no_grad()
def reestimate_batchnorm(model: nn.Module, inputs: Tensor, *, batch_size: int) -> bool:
    """Recompute every BatchNorm's running mean and variance from ``inputs``; False (and nothing
    done) when the model has none.

    The inputs are split into ⌈N / batch_size⌉ batches of near-equal size (so no batch is too
    small for BatchNorm). With batch sizes n_1, n_2, … and S_j = n_1 + … + n_j, batch j is
    folded in with momentum n_j / S_j, so the running mean is the exact mean over all inputs and
    the running variance the size-weighted average of the batches' unbiased variances (a single
    batch gives exactly the data's statistics). Only the BatchNorm layers are put in train mode
    (dropout stays off); afterwards every module's mode and every BatchNorm's momentum are restored.
    Parameters and all other buffers are untouched; BatchNorm's ``num_batches_tracked`` counts the
    batches.
    """
    layers = batchnorm_layers(model)
    if not layers:
        return False
    if len(inputs) == 0:
        raise ValueError("reestimate_batchnorm: no inputs")
    if batch_size < 1:
        raise ValueError(f"batch_size: must be at least 1; got {batch_size}")
    modes = [(module, module.training) for module in model.modules()]
    momenta = [layer.momentum for layer in layers]
    try:
        model.eval()
        for layer in layers:
            layer.reset_running_stats()
            layer.train()
        seen = 0
        for batch in torch.tensor_split(inputs, math.ceil(len(inputs) / batch_size)):
            seen += len(batch)
            for layer in layers:
                layer.momentum = len(batch) / seen
            model(batch)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        for module, training in modes:
            module.training = training
    return True
