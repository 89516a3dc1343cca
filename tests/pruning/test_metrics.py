import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pruning.groups import build_groups
from pruning.metrics import CostModel, sparsity_metrics
from pruning.models import MODEL_NAMES, build_model


def count(model, shape):
    structure = build_groups(model, shape)
    return structure, CostModel(model, structure, shape)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_dense_counts_match_torch_flop_counter_and_parameter_count(name):
    shape = (1, 8, 8) if name in ("mlp", "cnn-small") else (3, 32, 32)
    model = build_model(name, input_shape=shape, num_classes=10).eval()
    _, cost = count(model, shape)
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *shape))
    assert cost.dense_flops == counter.get_total_flops()
    assert cost.dense_params == sum(p.numel() for p in model.parameters())


def zero_units(group, units):
    with torch.no_grad():
        for _, p in group.params:
            p[units] = 0


def test_remaining_mlp_size_equals_the_physically_smaller_mlp():
    shape = (1, 8, 8)
    model = build_model("mlp", input_shape=shape, num_classes=10, mlp_widths=(300, 100))
    structure, cost = count(model, shape)
    zero_units(structure.groups[0], slice(0, 100))
    zero_units(structure.groups[1], slice(0, 50))
    metrics = sparsity_metrics(structure, cost)
    small = build_model("mlp", input_shape=shape, num_classes=10, mlp_widths=(200, 50))
    _, small_cost = count(small, shape)
    assert metrics["remaining_params"] * cost.dense_params == pytest.approx(small_cost.dense_params)
    assert metrics["remaining_flops"] * cost.dense_flops == pytest.approx(small_cost.dense_flops)
    assert metrics["group_sparsity"] == pytest.approx(150 / 400)
    assert metrics["layer_group_sparsity"] == pytest.approx({"features.1": 1 / 3,
                                                             "features.3": 1 / 2})


class ConvToLinear(nn.Module):
    """A conv whose channels become H·W features each of a Linear after a flatten."""

    def __init__(self, filters):
        super().__init__()
        self.conv = nn.Conv2d(1, filters, 3, padding=1)
        self.norm = nn.BatchNorm2d(filters)
        self.head = nn.Linear(filters * 64, 10)

    def forward(self, x):
        return self.head(torch.flatten(torch.relu(self.norm(self.conv(x))), 1))


def test_flattened_channels_are_priced_as_blocks_of_linear_inputs():
    torch.manual_seed(0)
    model = ConvToLinear(8)
    structure, cost = count(model, (1, 8, 8))
    assert structure.groups[0].consumers[0].inputs_per_unit == 64
    zero_units(structure.groups[0], [1, 4, 6])
    metrics = sparsity_metrics(structure, cost)
    _, small = count(ConvToLinear(5), (1, 8, 8))
    assert metrics["remaining_params"] * cost.dense_params == pytest.approx(small.dense_params)
    assert metrics["remaining_flops"] * cost.dense_flops == pytest.approx(small.dense_flops)


def test_weight_sparsity_and_norm_ratio():
    # The Flatten in front: Torch-Pruning 1.6 mis-maps a Linear applied to the raw input.
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 0.0]]))
        model[1].bias.copy_(torch.tensor([4.0, 0.0]))
    structure, cost = count(model, (2,))
    metrics = sparsity_metrics(structure, cost)
    assert metrics["weight_sparsity"] == pytest.approx(4 / 9)  # the classifier's 3 count too
    assert metrics["group_sparsity"] == pytest.approx(1 / 2)
    assert metrics["norm_ratio"] == pytest.approx(5 / 7)  # ‖(3, 4)‖₂ / ‖(3, 4)‖₁
