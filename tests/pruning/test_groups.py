import pytest
import torch
from torch import nn

from pruning.groups import GroupingError, build_groups
from pruning.models import MODEL_NAMES, build_model

INPUT_SHAPES = {"mlp": (1, 8, 8), "cnn-small": (1, 8, 8)}


def registered(name):
    torch.manual_seed(0)
    return build_model(name, input_shape=INPUT_SHAPES.get(name, (3, 32, 32)), num_classes=10)


def test_mlp_groups_are_hidden_neurons_and_the_classifier_is_free():
    structure = build_groups(registered("mlp"))
    assert [g.num_units for g in structure.groups] == [300, 100]
    assert [g.unit_size for g in structure.groups] == [64 + 1, 300 + 1]
    assert [name for name, _ in structure.free] == ["classifier.weight", "classifier.bias"]


def test_conv_groups_take_the_following_batchnorm():
    structure = build_groups(registered("cnn-small"))
    first = structure.groups[0]
    assert first.norm_name is not None
    assert [name.rsplit(".", 1)[1] for name, _ in first.params] == ["weight", "weight", "bias"]
    assert first.unit_size == 1 * 3 * 3 + 2  # filter weights + BatchNorm γ and β


def test_residual_tied_channels_are_left_out():
    structure = build_groups(registered("resnet20"))
    names = [g.name for g in structure.groups]
    # Only the first conv of each basic block feeds a channel nothing else adds to.
    assert len(names) == 9 and all(name.endswith(".conv1") for name in names)
    free = {name for name, _ in structure.free}
    assert "conv1.weight" in free and "layer1.0.conv2.weight" in free
    assert "layer2.0.downsample.0.weight" in free


def test_concatenated_outputs_and_excluded_layers_stay_free():
    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.left, self.right = nn.Conv2d(1, 4, 3), nn.Conv2d(1, 4, 3)
            self.mix = nn.Conv2d(8, 4, 1)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            x = torch.relu(self.mix(torch.cat([self.left(x), self.right(x)], 1)))
            return self.head(x.mean((2, 3)))

    model = Branches()
    assert build_groups(model).groups == []  # cat ties left/right; mean is not a known op
    mlp = registered("mlp")
    assert [g.name for g in build_groups(mlp, exclude=("features.1",)).groups] == ["features.3"]


def test_untraceable_model_gives_a_clear_error():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else x

    with pytest.raises(GroupingError, match="cannot trace Branchy"):
        build_groups(Branchy())


def test_param_groups_tie_each_layers_tensors():
    structure = build_groups(registered("cnn-small"))
    prunable, free = structure.param_groups()
    assert prunable["units"] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert free["prune"] is False and len(free["params"]) == 2


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_pruning_any_groups_keeps_the_forward_pass_working_and_emits_exact_zeros(name):
    model = registered(name)
    structure = build_groups(model)
    generator = torch.Generator().manual_seed(1)
    dead = {}
    with torch.no_grad():
        for index, group in enumerate(structure.groups):
            # One layer loses every unit, the others a random half.
            mask = (torch.ones(group.num_units, dtype=torch.bool) if index == 0 else
                    torch.rand(group.num_units, generator=generator) < 0.5)
            for _, p in group.params:
                p[mask] = 0
            dead[group.name] = mask
    seen = {}

    def capture(consumer, group_name):
        def hook(module, inputs):
            seen[(consumer.name, group_name)] = (inputs[0], consumer.inputs_per_unit)
        return hook

    handles = [c.module.register_forward_pre_hook(capture(c, g.name))
               for g in structure.groups for c in g.consumers]
    x = torch.randn(2, *INPUT_SHAPES.get(name, (3, 32, 32)), generator=generator)
    try:
        for training in (True, False):
            model.train(training)
            with torch.no_grad():
                out = model(x)
            assert out.shape == (2, 10) and torch.isfinite(out).all()
            assert len(seen) == sum(len(g.consumers) for g in structure.groups)
            for (_, group_name), (inputs, per_unit) in seen.items():
                units = inputs.reshape(2, -1, per_unit) if inputs.dim() == 2 else inputs
                mask = dead[group_name]
                assert mask.any() and torch.count_nonzero(units[:, mask]) == 0
            seen.clear()
    finally:
        for handle in handles:
            handle.remove()
    assert all(group.alive().logical_not().eq(dead[group.name]).all()
               for group in structure.groups)
