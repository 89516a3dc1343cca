"""ONNX models as whitelisted graphs: torch models exported to ONNX (both exporters) come back as a
graph JSON + state dict that compute the same function in float64; hand-written ONNX graphs in
the ways other frameworks write them (NHWC input, per-channel constants, MatMul + Add) likewise;
unsupported operators, damaged files and unsupported uses are refused by name."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import own_models
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from torch import nn

import pruning.onnx_import as onnx_import
from pruneboard.onnx_format import SUPPORTED_OPS, OnnxError, check_onnx
from pruning.compact.graphjson import rebuild
from pruning.onnx_import import OnnxImportError, convert_onnx

TOLERANCE = 1e-6  # relative to the largest output, in float64


pytestmark = pytest.mark.usefixtures("one_thread")


class ResidualCNN(nn.Module):
    """Conv-BN-ReLU, a residual block, max and average pooling, a strided conv, a classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU())
        self.conv1, self.bn1 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.down = nn.Conv2d(8, 12, 3, stride=2, padding=1, dilation=1)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        x = F.max_pool2d(self.stem(x), 2)
        x = F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        x = F.avg_pool2d(F.leaky_relu(self.down(x), 0.1), 2)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2),
                                  nn.Linear(32, 24), nn.Tanh(), nn.Linear(24, 16), nn.Sigmoid(),
                                  nn.Linear(16, 10))

    def forward(self, x):
        return self.body(x)


class Chunks(nn.Module):
    """Slices and chunks of activations, a flatten by view, a softmax."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4 + 2 * 4 * 4, 10)

    def forward(self, x):
        y = F.relu(self.conv(x))
        a, b = torch.chunk(y, 2, dim=1)
        z = torch.cat([a * b, y[:, 2:4]], 1)
        z = F.max_pool2d(z, 2)
        return self.fc(z.view(z.size(0), -1)).softmax(-1)


class Tokens(nn.Module):
    """Image patches as tokens: one token gathered, a mean over tokens, squeeze and unsqueeze."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 12, 2, stride=2)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        pooled = tokens[:, 0] + tokens.mean(dim=1).unsqueeze(1).squeeze(1)
        return self.fc(F.gelu(pooled, approximate="tanh"))


def export(model: nn.Module, shape, *, dynamo: bool = False, batch: int | None = None,
           **options) -> bytes:
    model.eval()
    example = (torch.randn(batch or 2, *shape),)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter warns that it is legacy
        if dynamo:
            program = torch.onnx.export(model, example, dynamo=True, verbose=False,
                                        input_names=["input"],
                                        dynamic_shapes=({0: torch.export.Dim("batch")},))
            return program.model_proto.SerializeToString()
        buffer = io.BytesIO()
        axes = None if batch else {"input": {0: "batch"}, "logits": {0: "batch"}}
        torch.onnx.export(model, example, buffer, dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes=axes, **options)
        return buffer.getvalue()


def converted(data: bytes) -> tuple[nn.Module, dict]:
    description, state = convert_onnx(data)
    module = rebuild(description, "onnx")
    module.load_state_dict(state, strict=True)
    return module.double().eval(), description


def relative_error(reference: nn.Module, module: nn.Module, shape) -> float:
    x = torch.randn(3, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, got = reference.double().eval()(x), module(x)
    assert got.shape == expected.shape
    return ((got - expected).abs().max() / expected.abs().max()).item()


def randomize_batch_norm(model: nn.Module) -> nn.Module:
    """Running statistics and affine parameters away from their defaults, so they are tested."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, nn.BatchNorm2d):
                for tensor, low, high in ((layer.running_mean, -0.5, 0.5),
                                          (layer.running_var, 0.5, 2.0),
                                          (layer.weight, 0.5, 1.5), (layer.bias, -0.2, 0.2)):
                    tensor.copy_(torch.empty_like(tensor).uniform_(low, high,
                                                                   generator=generator))
    return model


def seeded(factory):
    torch.manual_seed(0)
    return randomize_batch_norm(factory())


PRESERVE = {"training": torch.onnx.TrainingMode.PRESERVE}  # keeps BatchNormalization nodes
CASES = {
    "residual-cnn-bn": (lambda: seeded(ResidualCNN), (3, 16, 16), PRESERVE),
    "residual-cnn-folded": (lambda: seeded(ResidualCNN), (3, 16, 16), {}),
    "depthwise-separable": (lambda: seeded(own_models.MobileNetish), own_models.INPUT_SHAPE,
                            PRESERVE),
    "concat-dense": (lambda: seeded(own_models.DenseNetish), own_models.INPUT_SHAPE, PRESERVE),
    "mlp": (lambda: seeded(MLP), (1, 8, 8), {}),
    "chunks-slices": (lambda: seeded(Chunks), (3, 8, 8), {}),
    "tokens-gather": (lambda: seeded(Tokens), (3, 8, 8), {}),
    "transformer": (lambda: seeded(own_models.TinyViT), own_models.INPUT_SHAPE, {}),
    "transformer-erf-gelu": (lambda: seeded(own_models.TinyViT), own_models.INPUT_SHAPE,
                             {"opset_version": 17}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_torch_exports_convert_to_the_same_function(case):
    factory, shape, options = CASES[case]
    model = factory()
    data = export(model, shape, **options)
    facts = check_onnx(data)
    assert facts.input_shape == tuple(shape) and facts.output_size == 10
    module, description = converted(data)
    assert relative_error(model, module, shape) <= TOLERANCE
    if case == "transformer-erf-gelu":
        assert "Erf" in facts.ops and "GELU" in {m["type"] for m in description["modules"].values()}
    if case == "residual-cnn-bn":
        kinds = [m["type"] for m in description["modules"].values()]
        assert kinds.count("BatchNorm2d") == 3 and kinds.count("Conv2d") == 4


def test_the_dynamo_exporter_and_a_fixed_batch_export_convert_too():
    model = seeded(own_models.MobileNetish)
    module, _ = converted(export(model, own_models.INPUT_SHAPE, dynamo=True))
    assert relative_error(model, module, own_models.INPUT_SHAPE) <= TOLERANCE
    # Traced with a batch of 1 (no dynamic axes), the view(x.size(0), -1) becomes [1, -1];
    # the converted network still takes any batch.
    model = seeded(Chunks)
    module, _ = converted(export(model, (3, 8, 8), batch=1))
    assert relative_error(model, module, (3, 8, 8)) <= TOLERANCE


def test_a_dynamic_image_size_is_fixed_by_the_given_input_shape():
    model = seeded(own_models.MobileNetish).eval()
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 3, 16, 16),), buffer, dynamo=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}})
    data = buffer.getvalue()
    assert check_onnx(data).input_shape is None  # the API asks the pusher for input_shape
    description, state = convert_onnx(data, input_shape=(3, 12, 12))
    module = rebuild(description, "onnx")
    module.load_state_dict(state, strict=True)
    assert relative_error(model, module.double().eval(), (3, 12, 12)) <= TOLERANCE
    with pytest.raises(OnnxImportError, match=r"input_shape \(1, 12, 12\) disagrees"):
        convert_onnx(data, input_shape=(1, 12, 12))


def test_the_converted_graph_passes_the_torch_free_format_check():
    graph_format = pytest.importorskip("pruneboard.graph_format")
    for case in ("residual-cnn-bn", "transformer"):
        factory, shape, options = CASES[case]
        description, _ = convert_onnx(export(factory(), shape, **options))
        assert graph_format.check_description(description) == []


# Hand-written graphs, the way tf2onnx writes a Keras model: NHWC input transposed first, a
# Normalization layer's per-channel constants, Dense as MatMul + Add, ReLU6 as Clip.

def _f32(shape, seed: int, scale: float = 0.5) -> np.ndarray:
    """Random float32-exact values held as float64: the converted (float32) weights equal them."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale).astype(np.float32).astype(np.float64)


def _model(nodes, inputs, output, initializers, opset: int = 17) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, [output],
                              [numpy_helper.from_array(a, n) for n, a in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="tf2onnx", producer_version="1.16.1")
    return model.SerializeToString()


def _value(name, dims, elem=TensorProto.DOUBLE):
    return helper.make_tensor_value_info(name, elem, dims)


def keras_like(pads=(1, 1, 1, 1)) -> bytes:
    weights = {
        "mean": _f32((1, 3, 1, 1), 1), "std": np.abs(_f32((1, 3, 1, 1), 2)) + 0.5,
        "kernel": _f32((6, 3, 3, 3), 3), "conv_bias": _f32((6,), 4),
        "clip_min": np.array(0.0), "clip_max": np.array(6.0),
        "shape": np.array([-1, 6 * 4 * 4], dtype=np.int64),
        "dense": _f32((96, 10), 5, 0.2), "dense_bias": _f32((10,), 6),
    }
    nodes = [
        helper.make_node("Transpose", ["images"], ["nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Sub", ["nchw", "mean"], ["centred"], name="normalization/sub"),
        helper.make_node("Div", ["centred", "std"], ["scaled"], name="normalization/truediv"),
        helper.make_node("Conv", ["scaled", "kernel", "conv_bias"], ["conv"], pads=list(pads),
                         strides=[2, 2], name="model/conv2d/Conv2D"),
        helper.make_node("Clip", ["conv", "clip_min", "clip_max"], ["relu6"], name="model/relu6"),
        helper.make_node("LeakyRelu", ["relu6"], ["leaky"], alpha=0.2, name="model/leaky"),
        helper.make_node("Reshape", ["leaky", "shape"], ["flat"], name="model/flatten/Reshape"),
        helper.make_node("MatMul", ["flat", "dense"], ["mm"], name="model/dense/MatMul"),
        helper.make_node("Add", ["mm", "dense_bias"], ["logits"], name="model/dense/BiasAdd"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="model/softmax"),
    ]
    return _model(nodes, [_value("images", ["N", 8, 8, 3])], _value("probs", ["N", 10]),
                  weights)


def test_a_keras_style_graph_converts_with_its_nhwc_transpose_absorbed():
    data = keras_like()
    facts = check_onnx(data)
    assert facts.nhwc_input and facts.input_shape == (3, 8, 8) and facts.output_size == 10
    module, description = converted(data)
    kinds = sorted(m["type"] for m in description["modules"].values())
    assert kinds == ["Conv2d", "Conv2d", "Conv2d", "LeakyReLU", "Linear", "ReLU6", "Softmax"]
    images = _f32((3, 8, 8, 3), 7, 1.0)
    (expected,) = ReferenceEvaluator(onnx.load_model_from_string(data)).run(
        None, {"images": images})
    with torch.no_grad():
        got = module(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
    assert np.abs(got - expected).max() / np.abs(expected).max() <= TOLERANCE


def test_an_asymmetric_padding_is_refused_by_node():
    with pytest.raises(OnnxImportError, match=r"Conv node 'model/conv2d/Conv2D'.*not symmetric"):
        convert_onnx(keras_like(pads=(0, 0, 1, 1)))


def recurrent(extra_nodes=()) -> bytes:
    weights = {"W": _f32((1, 32, 4), 1), "R": _f32((1, 32, 8), 2)}
    nodes = [helper.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=8, name="lstm_1"),
             *extra_nodes]
    out = extra_nodes[-1].output[0] if extra_nodes else "y"
    return _model(nodes, [_value("x", [5, "N", 4])], _value(out, [5, 1, "N", 8]), weights)


def test_an_unsupported_operator_is_refused_with_its_name_by_check_and_convert():
    data = recurrent()
    message = r"operator LSTM \(node 'lstm_1'\) is not supported; supported: Add, AveragePool"
    with pytest.raises(OnnxError, match=message):
        check_onnx(data)
    with pytest.raises(OnnxImportError, match=message):
        convert_onnx(data)
    both = recurrent([helper.make_node("Einsum", ["y", "y"], ["z"], equation="ij,ij->ij",
                                       name="mix")])
    with pytest.raises(OnnxError, match=r"operators LSTM \(node 'lstm_1'\), Einsum \(node "
                                        r"'mix'\) are not supported"):
        check_onnx(both)
    assert "LSTM" not in SUPPORTED_OPS and "Conv" in SUPPORTED_OPS


def test_damaged_and_foreign_files_are_refused():
    data = export(seeded(MLP), (1, 8, 8))
    for cut in (1, 20, len(data) // 3, len(data) // 2, len(data) - 40, len(data) - 3):
        with pytest.raises(OnnxError):
            check_onnx(data[:cut])
        with pytest.raises(OnnxImportError):
            convert_onnx(data[:cut])
    for foreign in (b"", b"\x89PNG\r\n\x1a\n" + bytes(64), b'{"modules": {}, "graph": []}'):
        with pytest.raises(OnnxError, match="ONNX"):
            check_onnx(foreign)


def test_two_inputs_and_an_erf_outside_a_gelu_are_refused():
    two = _model([helper.make_node("Add", ["a", "b"], ["c"], name="add")],
                 [_value("a", ["N", 3, 4, 4]), _value("b", ["N", 3, 4, 4])],
                 _value("c", ["N", 3, 4, 4]), {})
    with pytest.raises(OnnxError, match="exactly one input.*2: a, b"):
        check_onnx(two)
    erf = _model([helper.make_node("Erf", ["a"], ["c"], name="lonely_erf")],
                 [_value("a", ["N", 3, 4, 4])], _value("c", ["N", 3, 4, 4]), {})
    outputs = helper.make_graph([helper.make_node("Relu", ["a"], ["b"]),
                                 helper.make_node("Relu", ["b"], ["c"])], "g",
                                [_value("a", ["N", 4])], [_value("b", ["N", 4]),
                                                          _value("c", ["N", 4])])
    with pytest.raises(OnnxError, match="exactly one output.*gives 2"):
        check_onnx(helper.make_model(outputs).SerializeToString())
    check_onnx(erf)  # a supported operator; only the conversion sees how it is used
    with pytest.raises(OnnxImportError, match="Erf node 'lonely_erf'.*GELU"):
        convert_onnx(erf)


def test_the_supported_operators_are_exactly_those_the_converter_maps():
    mapped = set(onnx_import.HANDLERS) | onnx_import.SHAPE_OPS | {"Erf"}  # Erf: in a GELU only
    assert mapped == SUPPORTED_OPS
