"""BatchNorm re-estimation: only BatchNorm buffers change, and they become the data's statistics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pruning.data import load_dataset
from pruning.models import build_model
from pruning.valley import batchnorm_layers, reestimate_batchnorm


class Mixed(nn.Module):
    """BatchNorm in 2-D and 1-D, a dropout between them and a buffer that is not BatchNorm's."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 8 * 8, 6)
        self.norm1d = nn.BatchNorm1d(6, momentum=None)
        self.head = nn.Linear(6, 10)
        self.register_buffer("scale", torch.tensor(1.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.norm(self.conv(x)))
        x = self.norm1d(self.fc(self.drop(x.flatten(1))))
        return self.head(x) * self.scale


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    return load_dataset("digits").train_x[:300]


def bn_buffer_names(model: nn.Module) -> set[str]:
    names = set()
    for module_name, module in model.named_modules():
        if module in batchnorm_layers(model):
            names |= {f"{module_name}.{b}" for b, _ in module.named_buffers()}
    return names


@pytest.mark.parametrize("training", [True, False])
def test_reestimation_changes_only_batchnorm_buffers(inputs, training):
    torch.manual_seed(0)
    model = Mixed().train(training)
    with torch.no_grad():  # move the running statistics away from their reset values
        model.train()(inputs[:50] * 3 + 1)
    model.train(training)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    assert reestimate_batchnorm(model, inputs, batch_size=64)
    after = model.state_dict()
    bn = bn_buffer_names(model)
    assert bn == {f"{layer}.{b}" for layer in ("norm", "norm1d")
                  for b in ("running_mean", "running_var", "num_batches_tracked")}
    for key, value in after.items():
        if key in bn:
            assert not torch.equal(value, before[key]), f"{key} was not re-estimated"
        else:
            assert torch.equal(value, before[key]), f"{key} changed"
    assert all(module.training == training for module in model.modules())
    assert model.norm.momentum == 0.1 and model.norm1d.momentum is None


def test_running_statistics_equal_the_datas_statistics(inputs):
    torch.manual_seed(0)
    model = Mixed()
    features = model.conv(inputs).detach()
    mean = features.mean(dim=(0, 2, 3))
    var = features.var(dim=(0, 2, 3), correction=1)
    reestimate_batchnorm(model, inputs, batch_size=len(inputs))  # one batch: exactly
    torch.testing.assert_close(model.norm.running_mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.norm.running_var, var, rtol=1e-5, atol=1e-6)
    # Dropout stayed off: the second layer saw the deterministic eval-mode features.
    hidden = model.fc(torch.relu(model.norm(model.conv(inputs))).flatten(1)).detach()
    torch.testing.assert_close(model.norm1d.running_mean, hidden.mean(0), rtol=1e-4, atol=1e-5)
    # Batches of unequal size (100, 100, 100 then 75, 75, 75, 75) still give the exact mean.
    for batch_size in (100, 77):
        reestimate_batchnorm(model, inputs, batch_size=batch_size)
        torch.testing.assert_close(model.norm.running_mean, mean, rtol=1e-5, atol=1e-6)
        assert int(model.norm.num_batches_tracked) == -(-len(inputs) // batch_size)


def test_reestimation_matches_batch_statistics_in_a_registered_model(inputs):
    torch.manual_seed(0)
    model = build_model("cnn-small", input_shape=(1, 8, 8), num_classes=10).eval()
    reestimate_batchnorm(model, inputs, batch_size=1000)
    first_conv, first_norm = model.features[0], model.features[1]
    features = first_conv(inputs).detach()
    torch.testing.assert_close(first_norm.running_mean, features.mean(dim=(0, 2, 3)),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(first_norm.running_var, features.var(dim=(0, 2, 3)),
                               rtol=1e-5, atol=1e-6)
    assert not model.training


def test_a_model_without_batchnorm_is_left_alone(inputs):
    torch.manual_seed(0)
    model = build_model("mlp", input_shape=(1, 8, 8), num_classes=10)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    assert reestimate_batchnorm(model, inputs, batch_size=64) is False
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_reestimation_needs_inputs():
    with pytest.raises(ValueError, match="no inputs"):
        reestimate_batchnorm(Mixed(), torch.zeros(0, 1, 8, 8), batch_size=8)
