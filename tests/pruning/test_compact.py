"""compact(): the physically smaller network computes exactly what the pruned one does."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pruning.compact import CompactError, compact
from pruning.groups import GroupStructure, build_groups
from pruning.metrics import CostModel
from pruning.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


SHAPES = {"mlp": (1, 8, 8), "cnn-small": (1, 8, 8), "vgg16-bn": (3, 32, 32),
          "resnet20": (3, 16, 16), "wrn-28-10": (3, 8, 8)}


def make(name: str, seed: int = 0) -> tuple[nn.Module, GroupStructure, CostModel]:
    """A float64 model in eval mode whose BatchNorms are not the identity (random γ, β and running
    statistics), its groups, and the cost model counted on it in float32."""
    torch.manual_seed(seed)
    model = build_model(name, input_shape=SHAPES[name], num_classes=10)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    structure = build_groups(model)
    cost = CostModel(model, structure, SHAPES[name])
    return model.double().eval(), structure, cost


@torch.no_grad()
def zero_random_groups(structure: GroupStructure, fraction: float, seed: int,
                       weights_only: bool = False) -> None:
    """Zero ``fraction`` of the units of every group: the whole group, or with ``weights_only``
    just the producer's weight rows (bias, γ and β keep a constant flowing)."""
    generator = torch.Generator().manual_seed(seed)
    for group in structure.groups:
        units = torch.randperm(group.num_units, generator=generator)[:int(fraction
                                                                          * group.num_units)]
        for name, param in group.params:
            if not weights_only or name == f"{group.name}.weight":
                param[units] = 0


def outputs(model: nn.Module, shape, seed: int = 1) -> torch.Tensor:
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    with torch.no_grad():
        return model(x)


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got - expected).abs().max() / expected.abs().max()).item()


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(SHAPES))
def test_compact_gives_the_same_outputs_and_the_predicted_size(name):
    model, structure, cost = make(name)
    zero_random_groups(structure, 0.5, seed=2)
    before = copy.deepcopy(model.state_dict())
    small = compact(model, structure, input_shape=SHAPES[name])
    assert relative_error(outputs(small, SHAPES[name]), outputs(model, SHAPES[name])) <= 1e-6
    alive = [g.alive().double().mean().item() for g in structure.groups]
    params_fraction, _ = cost.remaining(alive)
    assert count(small) == round(params_fraction * cost.dense_params) < count(model)
    # The original is untouched and keeps its shape.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not small.training


def test_compact_defaults_build_the_groups_and_guess_the_input():
    model, structure, _ = make("cnn-small")
    zero_random_groups(structure, 0.25, seed=3)
    small = compact(model)
    assert relative_error(outputs(small, (1, 8, 8)), outputs(model, (1, 8, 8))) <= 1e-6
    assert count(small) < count(model)


def test_constants_reaching_a_linear_are_folded_into_its_bias():
    model, structure, cost = make("mlp")
    zero_random_groups(structure, 0.5, seed=4, weights_only=True)
    small = compact(model, structure)
    assert relative_error(outputs(small, (1, 8, 8)), outputs(model, (1, 8, 8))) <= 1e-6
    # Every zero-weight neuron went, though its bias was not zero.
    widths = [m.out_features for m in small.features if isinstance(m, nn.Linear)]
    assert widths == [150, 50]


def test_batchnorm_beta_is_folded_only_where_exact():
    model, structure, _ = make("cnn-small")
    zero_random_groups(structure, 0.5, seed=5, weights_only=True)
    small = compact(model, structure)
    assert relative_error(outputs(small, (1, 8, 8)), outputs(model, (1, 8, 8))) <= 1e-6
    convs = [m.out_channels for m in small.features if isinstance(m, nn.Conv2d)]
    # The first two feed padded 3x3 convs, where β's constant is not uniform: kept. The last
    # feeds the classifier through the average pool: folded into its bias and removed.
    assert convs == [16, 32, 32]


class ValidConvNet(nn.Module):
    """A 3x3 conv whose BatchNorm'd, ReLU'd output feeds a bias-free conv without padding."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 6, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(6, 3)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.classifier(self.flatten(self.pool(self.bn2(self.conv2(out)))))


def test_constant_channels_fold_into_an_unpadded_conv_that_had_no_bias():
    torch.manual_seed(0)
    model = ValidConvNet().double().eval()
    with torch.no_grad():
        model.bn1.bias.uniform_(0.2, 1.0)  # positive β: the constant survives the ReLU
        model.bn1.running_mean.uniform_(-0.5, 0.5)
        model.conv1.weight[[1, 4, 6]] = 0
    small = compact(model, input_shape=(2, 7, 7))
    assert small.conv1.out_channels == 5 and small.conv2.in_channels == 5
    assert small.conv2.bias is not None
    assert relative_error(outputs(small, (2, 7, 7)), outputs(model, (2, 7, 7))) <= 1e-9


def residual_layers(model: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """(conv, BatchNorm) pairs whose outputs are added into resnet20's first-stage stream."""
    pairs = [(model.conv1, model.bn1)]
    return pairs + [(block.conv2, block.bn2) for block in model.layer1]


def test_residual_channels_go_only_when_dead_in_every_coupled_layer():
    model, _, _ = make("resnet20")
    pairs = residual_layers(model)
    with torch.no_grad():
        for conv, norm in pairs:  # channel 3: dead everywhere; channel 7: all but one layer
            for tensor in (conv.weight, norm.weight, norm.bias):
                tensor[3] = 0
                if norm is not pairs[-1][1]:
                    tensor[7] = 0
    small = compact(model, input_shape=(3, 16, 16))
    assert relative_error(outputs(small, (3, 16, 16)), outputs(model, (3, 16, 16))) <= 1e-6
    widths = {(c.out_channels, n.num_features) for c, n in residual_layers(small)}
    assert widths == {(15, 15)}
    assert {b.conv1.in_channels for b in small.layer1} == {15}
    assert small.layer2[0].conv1.in_channels == small.layer2[0].downsample[0].in_channels == 15


def test_residual_channel_zero_in_only_some_layers_is_kept():
    model, _, _ = make("resnet20")
    with torch.no_grad():
        for conv, norm in residual_layers(model)[1:]:  # all but the stem
            for tensor in (conv.weight, norm.weight, norm.bias):
                tensor[5] = 0
    small = compact(model, input_shape=(3, 16, 16))
    assert {c.out_channels for c, _ in residual_layers(small)} == {16}
    assert relative_error(outputs(small, (3, 16, 16)), outputs(model, (3, 16, 16))) <= 1e-6


def test_classifier_outputs_are_never_removed_and_a_dead_layer_keeps_one_unit():
    model, structure, _ = make("mlp")
    with torch.no_grad():
        model.classifier.weight[2] = 0
        model.classifier.bias[2] = 0
        first = structure.groups[0]
        for _, param in first.params:
            param.zero_()
    small = compact(model, structure)
    assert small.classifier.out_features == 10
    assert small.features[1].out_features == 1
    assert relative_error(outputs(small, (1, 8, 8)), outputs(model, (1, 8, 8))) <= 1e-6


def test_an_untraceable_model_is_refused_clearly():
    # Torch-Pruning traces through autograd, so data-dependent branches are fine; a model that
    # cannot run on the input shape is not.
    with pytest.raises(CompactError, match="cannot trace Sequential"):
        compact(nn.Sequential(nn.Linear(3, 2)), GroupStructure(groups=[], free=[]),
                input_shape=(4,))
