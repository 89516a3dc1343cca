"""Shared pieces of the model zoo: the error type and the weight initialisation."""

from __future__ import annotations

from torch import nn


class ModelError(ValueError):
    """A model cannot be built as asked (unknown name, bad shape, input too small)."""


def init_weights(model: nn.Module) -> None:
    """Initialise as torchvision's ResNet does, drawing from the global torch RNG.

    Conv2d: kaiming normal, mode fan_out, gain for ReLU, i.e. ``w ~ N(0, 2 / (k*k*C_out))``.
    BatchNorm2d: gamma 1, beta 0. Linear keeps PyTorch's default
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``. Modules are visited in registration order, so the same
    seed gives the same weights.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    """3x3 same-padding convolution, its BatchNorm, ReLU.

    The conv has no bias: the BatchNorm right after it subtracts the batch mean, so a bias would be
    a dead parameter that the pruning groups would still have to carry.
    """
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=False),
    ]
