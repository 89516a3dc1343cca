"""The model registry: every model builds, runs, traces with torch.fx, and fails clearly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pruning.models import MODEL_NAMES, ModelError, WideResNet, build_model

SMALL_INPUT = (1, 8, 8)
CIFAR_INPUT = (3, 32, 32)


def input_shape_for(name: str) -> tuple[int, int, int]:
    return SMALL_INPUT if name in ("mlp", "cnn-small") else CIFAR_INPUT


def last_call_target(traced: torch.fx.GraphModule) -> str:
    calls = [node for node in traced.graph.nodes if node.op == "call_module"]
    return str(calls[-1].target)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_builds_runs_and_traces(name: str) -> None:
    torch.manual_seed(0)
    shape = input_shape_for(name)
    model = build_model(name, input_shape=shape, num_classes=7).eval()
    x = torch.randn(2, *shape)

    with torch.no_grad():
        logits = model(x)
        traced = torch.fx.symbolic_trace(model)
        traced_logits = traced(x)

    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(traced_logits, logits)
    # The pruning code relies on the classifier being the last module called.
    assert last_call_target(traced) == "classifier"
    assert isinstance(model.get_submodule("classifier"), nn.Linear)


def test_mlp_has_the_requested_widths_and_no_norm_layers() -> None:
    model = build_model("mlp", input_shape=(1, 28, 28), num_classes=10, mlp_widths=(300, 100))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 300),
        (300, 100),
        (100, 10),
    ]
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def test_resnet_depths_count_their_convolutions() -> None:
    for name, depth in (("resnet20", 20), ("resnet56", 56)):
        model = build_model(name, input_shape=CIFAR_INPUT, num_classes=10)
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        # depth = 3x3 convs + the classifier; the two option-B shortcuts are 1x1.
        assert sum(m.kernel_size == (3, 3) for m in convs) == depth - 1
        assert sum(m.kernel_size == (1, 1) for m in convs) == 2


def test_every_batchnorm_follows_its_conv_in_plain_models() -> None:
    model = build_model("resnet20", input_shape=CIFAR_INPUT, num_classes=10)
    traced = torch.fx.symbolic_trace(model)
    modules = dict(traced.named_modules())
    for node in traced.graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], nn.BatchNorm2d):
            producer = node.args[0]
            assert isinstance(modules[producer.target], nn.Conv2d), node.target


def test_narrow_wide_resnet() -> None:
    torch.manual_seed(0)
    model = WideResNet(depth=10, widen_factor=2, num_classes=5, in_channels=3).eval()
    with torch.no_grad():
        logits = torch.fx.symbolic_trace(model)(torch.randn(2, 3, 16, 16))
    assert logits.shape == (2, 5)
    assert model.classifier.in_features == 64 * 2


def test_registry_wrn_is_28_10() -> None:
    model = build_model("wrn-28-10", input_shape=CIFAR_INPUT, num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert sum(m.kernel_size == (3, 3) for m in convs) == 25  # stem + 4 blocks x 3 stages x 2
    assert model.classifier.in_features == 640


def test_wide_resnet_rejects_bad_depth() -> None:
    with pytest.raises(ModelError, match="6n\\+4"):
        WideResNet(depth=12, widen_factor=1, num_classes=10)


def test_unknown_name_lists_the_models() -> None:
    with pytest.raises(ModelError, match="unknown model 'resnet18'.*vgg16-bn.*wrn-28-10"):
        build_model("resnet18", input_shape=CIFAR_INPUT, num_classes=10)


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        ("vgg16-bn", (3, 8, 8), "vgg16-bn needs inputs of at least 32x32; got 8x8"),
        ("vgg16-bn", (3, 32, 31), "got 32x31"),
        ("cnn-small", (1, 1, 8), "cnn-small needs inputs of at least 2x2; got 1x8"),
    ],
)
def test_too_small_input_is_refused(name: str, shape: tuple[int, int, int], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        build_model(name, input_shape=shape, num_classes=10)


def test_malformed_arguments_are_refused() -> None:
    with pytest.raises(ModelError, match="input_shape must be"):
        build_model("mlp", input_shape=(8, 8), num_classes=10)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="num_classes"):
        build_model("mlp", input_shape=SMALL_INPUT, num_classes=0)
    with pytest.raises(ModelError, match="mlp_widths"):
        build_model("mlp", input_shape=SMALL_INPUT, num_classes=10, mlp_widths=(300, 0))


@pytest.mark.parametrize("name", ["mlp", "cnn-small", "resnet20"])
def test_same_seed_gives_identical_weights(name: str) -> None:
    def weights(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return build_model(name, input_shape=input_shape_for(name), num_classes=10).state_dict()

    first, second, other = weights(3), weights(3), weights(4)
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0)
    assert any(not torch.equal(first[key], other[key]) for key in first if "weight" in key)


def test_conv_init_is_kaiming_fan_out() -> None:
    torch.manual_seed(0)
    model = build_model("vgg16-bn", input_shape=CIFAR_INPUT, num_classes=10)
    # The last 512 -> 512 conv: 2.4M weights give a tight estimate of the std.
    conv = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
    assert conv.in_channels == conv.out_channels == 512
    expected_std = (2.0 / (9 * conv.out_channels)) ** 0.5
    assert abs(conv.weight.std().item() / expected_std - 1) < 0.02
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(bn.weight, torch.ones_like(bn.weight)) for bn in bns)
    assert all(torch.equal(bn.bias, torch.zeros_like(bn.bias)) for bn in bns)
