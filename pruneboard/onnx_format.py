"""What an uploaded ONNX file must be before a worker converts it, checked without torch.

``check_onnx(data)`` parses the protobuf (``onnx.load_model_from_string``: no code runs) and
refuses, with one ``OnnxError`` naming every problem of a kind, a file that is not ONNX or is cut
short, a graph with more than one input, and operators the converter (``pruning.onnx_import``)
does not map onto the whitelisted layers. The API runs it on uploads so a refusal comes at once;
the worker's conversion may still refuse a supported operator used in a way the whitelist cannot
express (an asymmetric padding, say), and says so by node.
"""

from __future__ import annotations

from dataclasses import dataclass

# The converter's operators. Constant, Shape, Gather, Cast, Unsqueeze, Squeeze, Slice and Concat
# also appear in the small shape computations exporters write in front of a Reshape; Erf only
# in the exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)).
SUPPORTED_OPS = frozenset({
    "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "Conv",
    "Div", "Dropout", "Erf", "Flatten", "Gather", "Gelu", "Gemm", "GlobalAveragePool",
    "GlobalMaxPool", "Identity", "LayerNormalization", "LeakyRelu", "MatMul", "MaxPool", "Mul",
    "ReduceMean", "Relu", "Reshape", "Shape", "Sigmoid", "Slice", "Softmax", "Split", "Squeeze",
    "Sub", "Tanh", "Transpose", "Unsqueeze",
})
# Keras models (through tf2onnx) take NHWC images and transpose them first; with that transpose
# absorbed the converted network takes NCHW, as Pruneboard's datasets give.
NHWC_TO_NCHW = (0, 3, 1, 2)
_FLOATS = (1, 10, 11, 16)  # TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16


class OnnxError(ValueError):
    """An ONNX file Pruneboard cannot take; the message says why."""


@dataclass(frozen=True)
class OnnxFacts:
    input_name: str
    input_shape: tuple[int, int, int] | None  # (C, H, W) of an image input with static sizes
    output_size: int | None  # the last dimension of the one output, when static
    ops: tuple[str, ...]  # the operator types used, sorted
    opset: int  # of the default ONNX domain
    producer: str  # e.g. "pytorch 2.13.0" or "tf2onnx 1.16.1"
    nhwc_input: bool  # the leading NHWC -> NCHW transpose is absorbed


def load_model(data: bytes):
    """The parsed ``onnx.ModelProto``; OnnxError if ``data`` is not a complete ONNX model."""
    import onnx
    from google.protobuf.message import DecodeError

    if not data:
        raise OnnxError("the ONNX file is empty")
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as error:
        raise OnnxError(f"not an ONNX file, or cut short: {error}") from error
    # Protobuf parses many byte strings as a message of unknown fields; a real model says which
    # IR version it is and has a graph with an output.
    if model.ir_version == 0 or not model.HasField("graph") or not model.graph.output:
        raise OnnxError("not an ONNX model: no IR version or no graph with an output")
    external = [t.name for t in model.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise OnnxError(f"the weights {', '.join(external[:5])} are stored in external data "
                        f"files; export the model with its weights inside the .onnx file")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "invalid"
        raise OnnxError(f"not a valid ONNX model (perhaps cut short): {first}") from error
    return model


def graph_input(model):
    """The one real input (exporters of old IR versions list the initializers as inputs too)."""
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise OnnxError(f"the model must take exactly one input (the images); it takes "
                        f"{len(inputs)}: {names}")
    return inputs[0]


def unsupported_ops(model) -> list[str]:
    """One entry per unsupported operator type: its name and its first node's name."""
    first: dict[str, str] = {}
    for index, node in enumerate(model.graph.node):
        kind = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED_OPS:
            first.setdefault(kind, node.name or f"#{index}")
    return [f"{kind} (node {name!r})" for kind, name in first.items()]


def _dims(value) -> list[int | None]:
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]


def nhwc_input(model, name: str) -> bool:
    """Whether the input's only use is a transpose from NHWC to NCHW."""
    users = [n for n in model.graph.node if name in n.input]
    if len(users) != 1 or users[0].op_type != "Transpose":
        return False
    perm = [tuple(a.ints) for a in users[0].attribute if a.name == "perm"]
    return perm == [NHWC_TO_NCHW]


def check_onnx(data: bytes) -> OnnxFacts:
    """The facts of an ONNX model Pruneboard can convert; OnnxError says why not otherwise."""
    return facts_of(load_model(data))


def facts_of(model) -> OnnxFacts:
    """``check_onnx`` on a parsed ``onnx.ModelProto``."""
    problems = unsupported_ops(model)
    if problems:
        verb = "is" if len(problems) == 1 else "are"
        raise OnnxError(f"operator{'s' * (len(problems) > 1)} {', '.join(problems)} {verb} not "
                        f"supported; supported: {', '.join(sorted(SUPPORTED_OPS))}")
    image = graph_input(model)
    if len(model.graph.output) != 1:
        raise OnnxError(f"the model must give exactly one output (the logits); it gives "
                        f"{len(model.graph.output)}")
    if image.type.tensor_type.elem_type not in _FLOATS:
        raise OnnxError(f"the input {image.name!r} must be a float tensor (images)")
    dims = _dims(image)
    nhwc = len(dims) == 4 and nhwc_input(model, image.name)
    if nhwc:
        dims = [dims[i] for i in NHWC_TO_NCHW]
    # The first dimension is the batch, whatever size an export fixed it to.
    shape = tuple(dims[1:]) if len(dims) == 4 and None not in dims[1:] else None
    out = _dims(model.graph.output[0])
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return OnnxFacts(
        input_name=image.name, input_shape=shape,
        output_size=out[-1] if len(out) >= 2 and out[-1] else None,
        ops=tuple(sorted({n.op_type for n in model.graph.node})), opset=opset,
        producer=f"{model.producer_name} {model.producer_version}".strip(), nhwc_input=nhwc)
