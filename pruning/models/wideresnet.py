"""Wide residual networks (Zagoruyko and Komodakis, "Wide Residual Networks", BMVC 2016)."""

from __future__ import annotations

from torch import Tensor, nn

from .common import ModelError, init_weights


class WideBlock(nn.Module):
    """Pre-activation block: ``conv2(relu(bn2(conv1(a)))) + shortcut``, ``a = relu(bn1(x))``.

    With matching shapes the shortcut is ``x`` itself. Otherwise it is a 1x1 conv applied to ``a``
    (not ``x``), as in the authors' code; that conv has no BatchNorm after it, because the next
    block's ``bn1`` normalises the sum.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False
        )
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.shortcut: nn.Conv2d | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(
                in_channels, out_channels, kernel_size=1, stride=stride, bias=False
            )

    def forward(self, x: Tensor) -> Tensor:
        activated = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(activated))))
        # A structural choice fixed at construction, so symbolic tracing sees a single path.
        shortcut = x if self.shortcut is None else self.shortcut(activated)
        return out + shortcut


class WideResNet(nn.Module):
    """WRN-depth-k: a 3x3 stem of 16 filters, three stages of ``n = (depth - 4) / 6`` wide blocks
    with 16k, 32k and 64k filters (the 2nd and 3rd start with stride 2), then BN-ReLU, global
    average pool and a linear classifier. Dropout is 0, so there is no dropout layer."""

    def __init__(
        self, depth: int, widen_factor: int, num_classes: int, in_channels: int = 3
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ModelError(f"WideResNet depth must be 6n+4 with n >= 1; got {depth}")
        if widen_factor < 1:
            raise ModelError(f"WideResNet widen_factor must be >= 1; got {widen_factor}")
        blocks_per_stage = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, padding=1, bias=False)
        stages: list[nn.Module] = []
        width_in = 16
        for base, stride in ((16, 1), (32, 2), (64, 2)):
            width = base * widen_factor
            blocks = []
            for index in range(blocks_per_stage):
                blocks.append(WideBlock(width_in, width, stride if index == 0 else 1))
                width_in = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn = nn.BatchNorm2d(width_in)
        self.relu = nn.ReLU(inplace=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(width_in, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        out = self.relu(self.bn(out))
        return self.classifier(self.flatten(self.pool(out)))
