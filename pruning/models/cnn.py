"""Plain convolutional stacks: a small CNN for 8x8 digits and the CIFAR VGG16 with BatchNorm."""

from __future__ import annotations

from torch import Tensor, nn

from .common import conv_bn_relu, init_weights

# Numbers are conv output widths, "M" a 2x2 max-pool: VGG16's layout with the 3-layer
# fully connected head replaced by one Linear, as in the usual CIFAR ports (kuangliu/pytorch-cifar).
VGG16_CFG: tuple[int | str, ...] = (
    (64, 64, "M")
    + (128, 128, "M")
    + (256, 256, 256, "M")
    + (512, 512, 512, "M")
    + (512, 512, 512, "M")
)


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU layers (16, 32, 64 filters) with one 2x2 max-pool, global average pool,
    linear classifier. Needs inputs of at least 2x2."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn_relu(in_channels, 16),
            *conv_bn_relu(16, 32),
            nn.MaxPool2d(2),
            *conv_bn_relu(32, 64),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(64, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class VGG(nn.Module):
    """CIFAR-style VGG: 3x3 conv-BN-ReLU blocks and max-pools as in ``cfg``, global average pool,
    one linear classifier. Each max-pool halves the side (floor), so five of them need >= 32x32."""

    def __init__(self, cfg: tuple[int | str, ...], in_channels: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width_in = in_channels
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += conv_bn_relu(width_in, int(item))
                width_in = int(item)
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width_in, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
