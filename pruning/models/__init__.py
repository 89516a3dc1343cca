"""Model registry: the networks of the sDprun experiments, built by name.

Every model takes ``(N, C, H, W)`` and returns logits ``(N, num_classes)``, is traceable by
``torch.fx.symbolic_trace``, and calls its final ``classifier`` Linear last. Weights are drawn from
the global torch RNG, so seeding it before ``build_model`` fixes them. A name that is not built in
is looked up among the worker's model plugins (``pruning.plugins``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from pruneboard.spec.catalog import MIN_INPUT_SIDE, MODELS
from pruning.plugins import model_plugins

from .cnn import VGG, VGG16_CFG, SmallCNN
from .common import ModelError
from .mlp import MLP
from .resnet import CifarResNet
from .wideresnet import WideResNet

__all__ = [
    "MODEL_NAMES",
    "MLP",
    "VGG",
    "CifarResNet",
    "ModelError",
    "SmallCNN",
    "WideResNet",
    "build_model",
]

# The names and each model's smallest input side are facts of the job spec (torch-free).
MODEL_NAMES: tuple[str, ...] = MODELS


def build_model(
    name: str,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int,
    mlp_widths: tuple[int, ...] = (300, 100),
) -> nn.Module:
    """Build the model registered as ``name`` for inputs of shape ``(C, H, W)``.

    ``mlp_widths`` are the hidden widths of ``mlp`` and are ignored by the other models.
    Raises ModelError for an unknown name, a malformed shape, or an input too small for the model.
    """
    if len(input_shape) != 3 or any(int(d) != d or d < 1 for d in input_shape):
        raise ModelError(f"input_shape must be (C, H, W) of positive ints; got {input_shape!r}")
    if num_classes < 1:
        raise ModelError(f"num_classes must be >= 1; got {num_classes}")
    if name not in MODEL_NAMES:
        return _plugin_model(name, tuple(int(d) for d in input_shape), num_classes)
    if name == "mlp" and any(int(w) != w or w < 1 for w in mlp_widths):
        raise ModelError(f"mlp_widths must be positive ints; got {mlp_widths!r}")
    channels, height, width = (int(d) for d in input_shape)
    min_side = MIN_INPUT_SIDE[name]
    if height < min_side or width < min_side:
        raise ModelError(
            f"{name} needs inputs of at least {min_side}x{min_side}; got {height}x{width}"
        )
    builders: dict[str, Callable[[], nn.Module]] = {
        "mlp": lambda: MLP(channels * height * width, mlp_widths, num_classes),
        "cnn-small": lambda: SmallCNN(channels, num_classes),
        "vgg16-bn": lambda: VGG(VGG16_CFG, channels, num_classes),
        "resnet20": lambda: CifarResNet(20, num_classes, channels),
        "resnet56": lambda: CifarResNet(56, num_classes, channels),
        "wrn-28-10": lambda: WideResNet(28, 10, num_classes, channels),
    }
    return builders[name]()


def _plugin_model(name: str, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    plugins = model_plugins()
    if name not in plugins:
        installed = ", ".join(sorted(plugins)) or "none installed"
        raise ModelError(f"unknown model {name!r}; built in: {', '.join(MODEL_NAMES)}; "
                         f"from plugins: {installed}")
    try:
        model = plugins[name](input_shape, num_classes)
    except Exception as error:  # the plugin's own code; the job fails, the worker goes on
        raise ModelError(f"plugin model {name!r} failed to build for inputs {input_shape} and "
                         f"{num_classes} classes: {type(error).__name__}: {error}") from error
    if not isinstance(model, nn.Module):
        raise ModelError(f"plugin model {name!r} returned a {type(model).__name__}, not an "
                         f"nn.Module")
    return model
