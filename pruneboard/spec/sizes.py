"""Sizes of the built-in models, counted from their architecture without torch.

The API limits model size before anything runs, and it may not import torch. The counts follow
``pruning.metrics.CostModel`` exactly (every parameter; FLOPs are 2 × the multiply-adds of each
Conv2d and Linear for one sample); a test compares them with the torch models for every model.
"""

from __future__ import annotations

from collections.abc import Sequence

VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                    512, 512, 512, "M", 512, 512, 512, "M")


class ModelCount:
    """What validation needs to know of a model on an input shape, counted layer by layer."""

    def __init__(self, channels: int, height: int, width: int):
        self.channels, self.height, self.width = channels, height, width
        self.params = 0
        self.flops = 0
        self.smallest_norm_area: int | None = None  # H×W of the smallest map a BatchNorm sees
        self.outputs = 0  # values every Conv2d and Linear emits for one sample

    def conv(self, out: int, kernel: int = 3, stride: int = 1, bias: bool = False,
             channels: int | None = None) -> None:
        """A conv with 'same' padding for 3x3 (padding 1) and none for 1x1."""
        channels = self.channels if channels is None else channels
        padding = kernel // 2
        self.height = (self.height + 2 * padding - kernel) // stride + 1
        self.width = (self.width + 2 * padding - kernel) // stride + 1
        self.params += out * channels * kernel * kernel + (out if bias else 0)
        self.outputs += out * self.height * self.width
        self.flops += 2 * out * self.height * self.width * channels * kernel * kernel
        self.channels = out

    def batchnorm(self, channels: int | None = None) -> None:
        self.params += 2 * (self.channels if channels is None else channels)
        area = self.height * self.width
        self.smallest_norm_area = min(area, self.smallest_norm_area or area)

    def maxpool(self) -> None:
        self.height //= 2
        self.width //= 2

    def linear(self, features_in: int, features_out: int) -> None:
        self.params += features_in * features_out + features_out
        self.outputs += features_out
        self.flops += 2 * features_in * features_out

    def activation_bytes(self, batch_size: int) -> int:
        """A rough training-memory estimate for one minibatch's activations: float32 outputs
        of every Conv2d and Linear, three times over (the layer, its BatchNorm and its ReLU each
        keep theirs for the backward pass). Weights, optimizer state and data are not counted."""
        return 3 * 4 * batch_size * self.outputs


def count_model(model: str, input_shape: Sequence[int], num_classes: int,
                mlp_widths: Sequence[int] = (300, 100)) -> ModelCount:
    """Parameters, FLOPs per sample, layer outputs and the smallest map a BatchNorm sees (None:
    it has none; training needs batch × area > 1) of the built-in ``model``."""
    channels, height, width = (int(d) for d in input_shape)
    count = ModelCount(channels, height, width)
    if model == "mlp":
        features = channels * height * width
        for hidden in mlp_widths:
            count.linear(features, hidden)
            features = hidden
        count.linear(features, num_classes)
    elif model in ("cnn-small", "vgg16-bn"):
        cfg = (16, 32, "M", 64) if model == "cnn-small" else VGG16_CFG
        for item in cfg:
            if item == "M":
                count.maxpool()
            else:
                count.conv(int(item))
                count.batchnorm()
        count.linear(count.channels, num_classes)
    elif model in ("resnet20", "resnet56"):
        _resnet(count, blocks=(int(model.removeprefix("resnet")) - 2) // 6)
        count.linear(64, num_classes)
    elif model == "wrn-28-10":
        _wide_resnet(count, blocks=4, widen=10)
        count.linear(640, num_classes)
    else:
        raise ValueError(f"unknown model {model!r}")
    return count


def _resnet(count: ModelCount, blocks: int) -> None:
    count.conv(16)
    count.batchnorm()
    for width, stride in ((16, 1), (32, 2), (64, 2)):
        for index in range(blocks):
            step = stride if index == 0 else 1
            channels_in, height_in, width_in = count.channels, count.height, count.width
            count.conv(width, stride=step)
            count.batchnorm()
            count.conv(width)
            count.batchnorm()
            if step != 1 or channels_in != width:
                shortcut = ModelCount(channels_in, height_in, width_in)
                shortcut.conv(width, kernel=1, stride=step)
                shortcut.batchnorm()
                count.batchnorm(0)  # the shortcut's BatchNorm sees the block's output map
                count.params += shortcut.params
                count.flops += shortcut.flops
                count.outputs += shortcut.outputs


def _wide_resnet(count: ModelCount, blocks: int, widen: int) -> None:
    count.conv(16)
    for base, stride in ((16, 1), (32, 2), (64, 2)):
        width = base * widen
        for index in range(blocks):
            step = stride if index == 0 else 1
            channels_in, height_in, width_in = count.channels, count.height, count.width
            count.batchnorm()
            count.conv(width, stride=step)
            count.batchnorm()
            count.conv(width)
            if step != 1 or channels_in != width:
                shortcut = ModelCount(channels_in, height_in, width_in)
                shortcut.conv(width, kernel=1, stride=step)
                count.params += shortcut.params
                count.flops += shortcut.flops
                count.outputs += shortcut.outputs
    count.batchnorm()
