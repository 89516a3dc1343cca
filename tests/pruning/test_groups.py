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


def test_a_residual_stream_is_one_group_across_every_layer_that_writes_into_it():
    structure = build_groups(registered("resnet20"))
    by_name = {g.name: g for g in structure.groups}
    stream = by_name["conv1"]  # stage 1: the stem and every block's second conv
    assert stream.producers == ["conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"]
    assert stream.norm_layers == ["bn1", "layer1.0.bn2", "layer1.1.bn2", "layer1.2.bn2"]
    assert stream.unit_size == 3 * 9 + 3 * 16 * 9 + 4 * 2
    assert by_name["layer2.0.conv2"].producers == [
        "layer2.0.conv2", "layer2.0.downsample.0", "layer2.1.conv2", "layer2.2.conv2"]
    # 3 streams + 9 first convs: every conv weight of the network is prunable.
    assert len(structure.groups) == 12
    assert structure.prunable_share() == 1.0
    assert [name for name, _ in structure.free] == ["classifier.weight", "classifier.bias"]
    assert structure.dense == [(["classifier"], "its outputs are the model's outputs")]


def test_wide_resnet_streams_take_the_batchnorms_that_read_them():
    structure = build_groups(registered("wrn-28-10"))
    assert structure.prunable_share() >= 0.9
    stream = {g.name: g for g in structure.groups}["layer3.0.conv2"]
    assert stream.producers == ["layer3.0.conv2", "layer3.0.shortcut", "layer3.1.conv2",
                                "layer3.2.conv2", "layer3.3.conv2"]
    # Pre-activation blocks: the stream is normalised by the next blocks' bn1 and the last bn.
    assert stream.norm_layers == ["layer3.1.bn1", "layer3.2.bn1", "layer3.3.bn1", "bn"]


def test_baselines_leave_coupled_streams_dense_and_say_why():
    structure = build_groups(registered("resnet20"), coupled=False)
    assert all(len(g.producers) == 1 for g in structure.groups) and len(structure.groups) == 9
    reasons = [reason for _, reason in structure.dense]
    assert sum("coupled across 4 layers" in r for r in reasons) == 3


def test_concatenated_outputs_and_excluded_layers():
    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.left, self.right = nn.Conv2d(1, 4, 3), nn.Conv2d(1, 4, 3)
            self.norm = nn.BatchNorm2d(8)
            self.mix = nn.Conv2d(8, 4, 1)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            x = torch.relu(self.mix(self.norm(torch.cat([self.left(x), self.right(x)], 1))))
            return self.head(x.mean((2, 3)))

    structure = build_groups(Branches(), (1, 8, 8))
    # The BatchNorm after the concatenation sees left's and right's channels re-indexed.
    assert [g.name for g in structure.groups] == ["mix"]
    assert any("re-indexed" in reason for _, reason in structure.dense)
    mlp = registered("mlp")
    assert [g.name for g in build_groups(mlp, exclude=("features.1",)).groups] == ["features.3"]


def test_an_unknown_operation_on_a_channel_leaves_its_group_dense():
    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(torch.sigmoid(self.conv(x)).mean((2, 3)))

    structure = build_groups(Gated(), (1, 8, 8))
    assert structure.groups == []
    assert any("Sigmoid" in reason for _, reason in structure.dense)


def test_a_model_that_cannot_run_on_the_shape_gives_a_clear_error():
    with pytest.raises(GroupingError, match="cannot trace Sequential.*mat1 and mat2"):
        build_groups(nn.Sequential(nn.Linear(3, 2)), (2,))


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


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_zeroing_any_groups_then_compacting_is_exact_in_float64(name):
    from pruning.compact import compact

    shape = INPUT_SHAPES.get(name, (3, 32, 32))
    model = registered(name).double()
    structure = build_groups(model, shape)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for group in structure.groups:
            dead = torch.rand(group.num_units, generator=generator) < 0.4
            for _, p in group.params:
                p[dead] = 0
        model.train()
        model(torch.randn(8, *shape, generator=generator, dtype=torch.float64))  # BN statistics
    model.eval()
    small = compact(model, structure, input_shape=shape)
    x = torch.randn(4, *shape, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        expected, got = model(x), small(x)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    assert torch.allclose(got, expected, rtol=0, atol=1e-10 * expected.abs().max().item())
