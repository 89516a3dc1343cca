"""Sizes of the built-in models, counted from their architecture without torch.

The API limits model size before anything runs, and it may not import torch. The counts follow
``pruning.metrics.CostModel`` exactly (every parameter; FLOPs are 2 × the multiply-adds of each
Conv2d and Linear for one sample); a test compares them with the torch models for every model.

The same walk records every conv, linear and BatchNorm layer under the name the torch model
gives it (``ModelCount.layers``), with the channel space it reads and the one its output belongs
to: a residual addition makes every layer that writes into it share one space. That is what the
torch-free pruning forecast (``pruneboard.spec.forecast``) groups by.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                    512, 512, 512, "M", 512, 512, 512, "M")


INPUT = "input"  # the channel space of the model's input


@dataclass(frozen=True)
class Layer:
    """One conv, linear or BatchNorm layer under its name in the torch model. ``source`` is the
    channel space it reads, ``space`` the one its output channels belong to: a conv or linear
    layer starts its own (named after it) unless it adds into a residual stream; a BatchNorm
    stays in the space it reads."""

    name: str
    kind: str  # "conv", "linear" or "batchnorm"
    channels_in: int
    channels_out: int
    kernel: int
    bias: bool
    source: str
    space: str


class ModelCount:
    """What validation needs to know of a model on an input shape, counted layer by layer."""

    def __init__(self, channels: int, height: int, width: int, space: str = INPUT):
        self.channels, self.height, self.width = channels, height, width
        self.params = 0
        self.flops = 0
        self.smallest_norm_area: int | None = None  # H×W of the smallest map a BatchNorm sees
        self.outputs = 0  # values every Conv2d and Linear emits for one sample
        self.layers: list[Layer] = []  # the named layers, in the torch model's order
        self.space = space  # the channel space of the running output

    def conv(self, out: int, kernel: int = 3, stride: int = 1, bias: bool = False,
             channels: int | None = None, *, name: str | None = None,
             into: str | None = None) -> None:
        """A conv with 'same' padding for 3x3 (padding 1) and none for 1x1; ``into``: the
        residual stream (channel space) its output is added into."""
        channels = self.channels if channels is None else channels
        self._record(name, "conv", channels, out, kernel, bias, into)
        padding = kernel // 2
        self.height = (self.height + 2 * padding - kernel) // stride + 1
        self.width = (self.width + 2 * padding - kernel) // stride + 1
        self.params += out * channels * kernel * kernel + (out if bias else 0)
        self.outputs += out * self.height * self.width
        self.flops += 2 * out * self.height * self.width * channels * kernel * kernel
        self.channels = out

    def batchnorm(self, channels: int | None = None, *, name: str | None = None) -> None:
        if name is not None:
            self.layers.append(Layer(name, "batchnorm", self.channels, self.channels, 1, True,
                                     self.space, self.space))
        self.params += 2 * (self.channels if channels is None else channels)
        area = self.height * self.width
        self.smallest_norm_area = min(area, self.smallest_norm_area or area)

    def maxpool(self) -> None:
        self.height //= 2
        self.width //= 2

    def linear(self, features_in: int, features_out: int, *, name: str | None = None) -> None:
        self._record(name, "linear", features_in, features_out, 1, True, None)
        self.params += features_in * features_out + features_out
        self.outputs += features_out
        self.flops += 2 * features_in * features_out

    def _record(self, name: str | None, kind: str, channels_in: int, channels_out: int,
                kernel: int, bias: bool, into: str | None) -> None:
        if name is None:
            return
        space = into or name
        self.layers.append(Layer(name, kind, channels_in, channels_out, kernel, bias, self.space,
                                 space))
        self.space = space

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
        # features: Flatten, then Linear and ReLU per hidden width.
        features = channels * height * width
        for index, hidden in enumerate(mlp_widths):
            count.linear(features, hidden, name=f"features.{1 + 2 * index}")
            features = hidden
        count.linear(features, num_classes, name="classifier")
    elif model in ("cnn-small", "vgg16-bn"):
        # features: conv, BatchNorm, ReLU per width and one MaxPool2d per "M".
        cfg = (16, 32, "M", 64) if model == "cnn-small" else VGG16_CFG
        index = 0
        for item in cfg:
            if item == "M":
                count.maxpool()
                index += 1
            else:
                count.conv(int(item), name=f"features.{index}")
                count.batchnorm(name=f"features.{index + 1}")
                index += 3
        count.linear(count.channels, num_classes, name="classifier")
    elif model in ("resnet20", "resnet56"):
        _resnet(count, blocks=(int(model.removeprefix("resnet")) - 2) // 6)
        count.linear(64, num_classes, name="classifier")
    elif model == "wrn-28-10":
        _wide_resnet(count, blocks=4, widen=10)
        count.linear(640, num_classes, name="classifier")
    else:
        raise ValueError(f"unknown model {model!r}")
    return count


def _resnet(count: ModelCount, blocks: int) -> None:
    """pruning.models.resnet: post-activation blocks, 1x1 conv + BN shortcuts (option B)."""
    count.conv(16, name="conv1")
    count.batchnorm(name="bn1")
    for stage, (width, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
        for index in range(blocks):
            block = f"layer{stage}.{index}"
            step = stride if index == 0 else 1
            channels_in, height_in, width_in = count.channels, count.height, count.width
            stream = count.space
            projected = step != 1 or channels_in != width
            count.conv(width, stride=step, name=f"{block}.conv1")
            count.batchnorm(name=f"{block}.bn1")
            # conv2 + bn2 add into the block's input, or start the stream the shortcut joins.
            count.conv(width, name=f"{block}.conv2", into=None if projected else stream)
            count.batchnorm(name=f"{block}.bn2")
            if projected:
                shortcut = ModelCount(channels_in, height_in, width_in, space=stream)
                shortcut.conv(width, kernel=1, stride=step, name=f"{block}.downsample.0",
                              into=count.space)
                shortcut.batchnorm(name=f"{block}.downsample.1")
                count.batchnorm(0)  # the shortcut's BatchNorm sees the block's output map
                count.params += shortcut.params
                count.flops += shortcut.flops
                count.outputs += shortcut.outputs
                count.layers += shortcut.layers


def _wide_resnet(count: ModelCount, blocks: int, widen: int) -> None:
    """pruning.models.wideresnet: pre-activation blocks; a 1x1 shortcut conv (no BatchNorm) reads
    the block's activated input where the shape changes."""
    count.conv(16, name="conv1")
    for stage, (base, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
        width = base * widen
        for index in range(blocks):
            block = f"layer{stage}.{index}"
            step = stride if index == 0 else 1
            channels_in, height_in, width_in = count.channels, count.height, count.width
            stream = count.space
            projected = step != 1 or channels_in != width
            count.batchnorm(name=f"{block}.bn1")  # normalises the stream it reads
            count.conv(width, stride=step, name=f"{block}.conv1")
            count.batchnorm(name=f"{block}.bn2")
            count.conv(width, name=f"{block}.conv2", into=None if projected else stream)
            if projected:
                shortcut = ModelCount(channels_in, height_in, width_in, space=stream)
                shortcut.conv(width, kernel=1, stride=step, name=f"{block}.shortcut",
                              into=count.space)
                count.params += shortcut.params
                count.flops += shortcut.flops
                count.outputs += shortcut.outputs
                count.layers += shortcut.layers
    count.batchnorm(name="bn")
