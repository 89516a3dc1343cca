"""Architectures of one's own (tests/support/own_models.py): depthwise-separable inverted
residuals, DenseNet-style concatenation, a vision transformer. Each travels as graph JSON, is
grouped by the dependency graph (what cannot be pruned safely stays dense, with the reason),
trains through the engine, and compacts exactly."""

from __future__ import annotations

import json

import pytest
import torch
from own_models import INPUT_SHAPE, MODELS, NUM_CLASSES, make
from torch import nn

from pruneboard import graph_format
from pruning.compact import ExportError, compact, graphjson
from pruning.groups import build_groups
from pruning.metrics import CostModel

pytestmark = pytest.mark.usefixtures("one_thread")


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got - expected).abs().max() / expected.abs().max()).item()


def outputs(model: nn.Module, dtype=torch.float64, seed: int = 1) -> torch.Tensor:
    x = torch.randn(4, *INPUT_SHAPE, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    with torch.no_grad():
        return model.eval()(x)


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_whitelist_has_one_source():
    assert set(graphjson.FUNCTIONS) == graph_format.FUNCTIONS
    assert set(graphjson.MODULES) == set(graph_format.MODULES)
    assert all(issubclass(cls, nn.Module) for cls, _ in graphjson.MODULES.values())


@pytest.mark.parametrize("name", list(MODELS))
def test_each_model_travels_as_whitelisted_json_and_groups_the_same(name):
    model = make(name).eval()
    description = json.loads(json.dumps(describe := graphjson.describe(model)))
    assert description == describe and graph_format.check_description(description) == []
    rebuilt = graphjson.rebuild(description, "model.json")
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    assert torch.equal(outputs(rebuilt, torch.float32), outputs(model, torch.float32))
    ours, theirs = build_groups(model, INPUT_SHAPE), build_groups(rebuilt, INPUT_SHAPE)
    # (The rebuilt network registers its layers in another order: compare sorted.)
    assert sorted(sorted(g.producers) for g in ours.groups) == \
        sorted(sorted(g.producers) for g in theirs.groups)
    assert sorted(map(sorted, (d[0] for d in ours.dense))) == \
        sorted(map(sorted, (d[0] for d in theirs.dense)))


def test_the_transformer_describes_its_positional_embedding_and_gets_it_back_from_the_weights():
    description = graphjson.describe(make("tinyvit"))
    assert description["parameters"] == {"pos_embed": {
        "shape": [1, 16, 16], "dtype": "float32", "buffer": False, "requires_grad": True}}
    rebuilt = graphjson.rebuild(description, "model.json")
    assert torch.count_nonzero(rebuilt.pos_embed) == 0  # values come from the weights file
    assert {n["target"] for n in description["graph"]} >= {"builtins.getattr", "torch.matmul"}


def test_inverted_residuals_depthwise_convs_join_their_input_channels():
    structure = build_groups(make("mobilenetish"), INPUT_SHAPE)
    groups = {g.name: g for g in structure.groups}
    expand = groups["blocks.1.expand.0"]
    assert expand.producers == ["blocks.1.expand.0", "blocks.1.depthwise.0"]
    assert expand.norm_layers == ["blocks.1.expand.1", "blocks.1.depthwise.1"]
    assert expand.unit_size == 8 + 2 + 9 + 2  # 1x1 filter, BN, 3x3 depthwise filter, BN
    # The residual streams: the stem with block 0's projection, blocks 1 and 2's projections.
    assert groups["stem.0"].producers == ["stem.0", "blocks.0.project.0"]
    assert groups["blocks.1.project.0"].producers == ["blocks.1.project.0", "blocks.2.project.0"]
    assert len(structure.groups) == 6 and structure.prunable_share() == 1.0
    assert structure.dense == [(["classifier"], "its outputs are the model's outputs")]
    # The baselines prune one layer's units: the depthwise filters go with their channel.
    single = build_groups(make("mobilenetish"), INPUT_SHAPE, coupled=False)
    assert {g.name for g in single.groups} == {
        "blocks.0.expand.0", "blocks.1.expand.0", "blocks.2.expand.0", "last.0"}


def test_concatenated_channels_are_read_at_their_offsets():
    structure = build_groups(make("densenetish"), INPUT_SHAPE)
    groups = {g.name: g for g in structure.groups}
    assert len(groups) == 6 and structure.prunable_share() == 1.0
    stem = groups["stem.0"]
    assert [c.name for c in stem.consumers] == ["block1.0.conv", "block1.1.conv", "transition.0"]
    layer = {c.name: c for c in groups["block1.0.conv"].consumers}
    # block1.1 reads [stem (8), block1.0 (6)]; the transition [stem, block1.0, block1.1].
    assert layer["block1.1.conv"].columns == tuple((8 + u,) for u in range(6))
    assert layer["transition.0"].columns == tuple((8 + u,) for u in range(6))


def test_the_transformer_prunes_its_mlp_neurons_and_says_why_the_rest_stays_dense():
    structure = build_groups(make("tinyvit"), INPUT_SHAPE)
    assert [(g.name, g.num_units, g.producers) for g in structure.groups] == [
        ("blocks.0.fc1", 64, ["blocks.0.fc1"]), ("blocks.1.fc1", 64, ["blocks.1.fc1"])]
    assert [c.name for c in structure.groups[0].consumers] == ["blocks.0.fc2"]
    reasons = {frozenset(layers): reason for layers, reason in structure.dense}
    stream = next(r for layers, r in reasons.items() if "patch_embed" in layers)
    assert "LayerNorm normalises across its channels" in stream and "pos_embed" in stream
    attention = [r for layers, r in reasons.items() if "blocks.0.attn.q" in layers]
    assert attention and "matrix product or softmax mixes its channels" in attention[0]


class PreActivationDense(nn.Module):
    """A DenseNet layer as published (BN-ReLU-Conv): a BatchNorm normalises the concatenation."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.norm, self.conv = nn.BatchNorm2d(4), nn.Conv2d(4, 3, 3, padding=1)
        self.norm2, self.head = nn.BatchNorm2d(7), nn.Linear(7, 2)

    def forward(self, x):
        x = self.stem(x)
        x = torch.cat([x, self.conv(torch.relu(self.norm(x)))], 1)
        return self.head(torch.relu(self.norm2(x)).mean((2, 3)))


class Wrapped(nn.Module):
    """conv -> (the op) -> 1x1 conv -> head: the first conv's group meets the op."""

    def __init__(self, op, groups: int = 1):
        super().__init__()
        self.op = op
        self.conv = nn.Conv2d(3, 4, 3)
        self.mix = nn.Conv2d(4, 4, 1, groups=groups)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.mix(self.op(self.conv(x))).mean((2, 3)))


@pytest.mark.parametrize("model, dense, why", [
    (PreActivationDense(), "stem", "re-indexed"),
    (Wrapped(lambda x: x + 1.0), "conv", "a constant is added"),
    (Wrapped(nn.Hardtanh(0.5, 1.0)), "conv", "may turn a zero into a non-zero"),
    (Wrapped(nn.Identity(), groups=2), "conv", "grouped convolution"),
    (Wrapped(lambda x: x.transpose(2, 3)), "conv", "transpose moves its channel axis"),
])
def test_what_cannot_be_zeroed_exactly_stays_dense_with_the_reason(model, dense, why):
    structure = build_groups(model, (3, 8, 8))
    assert dense not in {g.name for g in structure.groups}
    assert any(dense in layers and why in reason for layers, reason in structure.dense)


def test_a_linear_on_raw_vectors_is_grouped_and_compacts_exactly():
    # Torch-Pruning 1.6 traced such a model on one unbatched vector and mis-mapped its
    # channels; the graph is now traced on a batch.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(),
                          nn.Linear(12, 4)).double()
    structure = build_groups(model, (8,))
    assert [(g.name, g.num_units) for g in structure.groups] == [("0", 16), ("2", 12)]
    with torch.no_grad():
        for group in structure.groups:
            for _, p in group.params:
                p[::2] = 0
    small = compact(model, structure, input_shape=(8,))
    x = torch.randn(5, 8, dtype=torch.float64)
    assert relative_error(small(x), model(x)) <= 1e-9
    assert [m.out_features for m in small if isinstance(m, nn.Linear)] == [8, 6, 4]


@pytest.mark.parametrize("weights_only", [False, True])
@pytest.mark.parametrize("name", list(MODELS))
def test_zeroed_groups_are_removed_exactly(name, weights_only):
    """Half the units of every group zeroed (whole, or the producer's weights only, leaving a
    constant for folding), random BatchNorm statistics, float64."""
    model = make(name)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    model = model.double().eval()
    structure = build_groups(model, INPUT_SHAPE)
    cost = CostModel(model, structure, INPUT_SHAPE)
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for group in structure.groups:
            units = torch.randperm(group.num_units, generator=generator)[:group.num_units // 2]
            for param_name, param in group.params:
                if not weights_only or param_name == f"{group.name}.weight":
                    param[units] = 0
    small = compact(model, structure, input_shape=INPUT_SHAPE)
    assert relative_error(outputs(small), outputs(model)) <= 1e-6
    assert count(small) < count(model)
    if not weights_only:  # the cost model predicts the compact size exactly
        alive = [g.alive().double().mean().item() for g in structure.groups]
        assert count(small) == round(cost.remaining(alive)[0] * cost.dense_params)


def forged(edit) -> dict:
    description = graphjson.describe(make("tinyvit"))
    edit(description)
    return description


def call(description: dict, op: str, target: str, args=None) -> None:
    node = next(n for n in description["graph"] if n["op"] == "call_method")
    node["op"], node["target"] = op, target
    if args is not None:
        node["args"] = args


@pytest.mark.parametrize("edit, message", [
    (lambda d: call(d, "call_function", "builtins.eval"),
     r"calls function 'builtins\.eval', which is not in the whitelist"),
    (lambda d: call(d, "call_function", "os.system"),
     r"calls function 'os\.system', which is not in the whitelist"),
    (lambda d: call(d, "call_method", "__reduce_ex__"),
     r"calls method '__reduce_ex__', which is not in the whitelist"),
    (lambda d: call(d, "call_function", "builtins.getattr", [{"node": "x"}, "__class__"]),
     r"getattr may only read \['shape'\]"),
    (lambda d: d["modules"]["head"].update(type="subprocess.Popen"),
     r"layer head has type 'subprocess\.Popen', which is not in the whitelist"),
    (lambda d: d["parameters"]["pos_embed"].update(shape=[1 << 20, 1 << 20]),
     r"more than 2147483648"),
    (lambda d: d["parameters"].update({"graph.owning_module": {"shape": [1]}}),
     r"'graph\.owning_module' uses the reserved name 'graph'"),
])
def test_a_graph_outside_the_whitelist_is_refused_by_rebuild_naming_it(edit, message):
    description = forged(edit)
    with pytest.raises(ExportError, match=f"^model.json: .*{message}"):
        graphjson.rebuild(description, "model.json")


def test_describe_refuses_a_tensor_that_would_not_travel_with_the_weights():
    class Shifted(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(4, NUM_CLASSES)
            self.register_buffer("shift", torch.ones(4), persistent=False)

        def forward(self, x):
            return self.head(x.flatten(1) + self.shift)

    with pytest.raises(ExportError, match="shift, which is neither a parameter nor a saved"):
        graphjson.describe(Shifted())
