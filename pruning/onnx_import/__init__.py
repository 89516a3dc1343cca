"""ONNX models (from any framework: PyTorch, Keras through tf2onnx, ...) as Pruneboard's graph JSON
plus a state dict, so an uploaded ``.onnx`` file becomes a model like a pushed graph.

The converter reads the protobuf and maps each operator onto a whitelisted layer, function or
method (``pruneboard.onnx_format.SUPPORTED_OPS``); the layers carry the ONNX weights, so the
dependency graph sees Conv2d, BatchNorm2d and Linear layers it can prune. Nothing in the file
runs as code. An operator it cannot map fails with the operator's and the node's names.

``convert_onnx(data)`` gives ``(description, state)``: ``graphjson.rebuild(description, where)``
with ``load_state_dict(state, strict=True)`` is the model. With a static image input every
mapped node also runs on meta tensors (``builder``), so sizes are exact and a node whose operands
do not fit fails by name.
"""

from __future__ import annotations

import re
from dataclasses import replace

import torch
from torch import fx

from pruneboard.onnx_format import (
    NHWC_TO_NCHW,
    OnnxError,
    OnnxFacts,
    facts_of,
    graph_input,
    load_model,
)
from pruning.compact.errors import ExportError
from pruning.onnx_import import layers, ops, shapes
from pruning.onnx_import.builder import Builder
from pruning.onnx_import.patterns import find_gelus
from pruning.onnx_import.reader import GraphReader, OnnxImportError, attributes, fail

__all__ = ["OnnxImportError", "convert_onnx", "onnx_module"]

HANDLERS = {
    "Conv": layers.conv, "BatchNormalization": layers.batch_norm, "Gemm": layers.gemm,
    "MatMul": layers.matmul, "LayerNormalization": layers.layer_norm,
    "Relu": ops.relu, "Sigmoid": ops.sigmoid, "Tanh": ops.tanh, "LeakyRelu": ops.leaky_relu,
    "Gelu": ops.gelu, "Clip": ops.clip, "Dropout": ops.dropout, "Softmax": ops.softmax,
    "Identity": ops.alias, "Cast": ops.cast,
    "Add": ops.arithmetic, "Sub": ops.arithmetic, "Mul": ops.arithmetic, "Div": ops.arithmetic,
    "Concat": ops.concat, "MaxPool": ops.max_pool, "AveragePool": ops.average_pool,
    "GlobalAveragePool": ops.global_pool, "GlobalMaxPool": ops.global_pool,
    "Flatten": ops.flatten, "Transpose": ops.transpose, "ReduceMean": ops.reduce_mean,
    "Reshape": shapes.reshape, "Unsqueeze": shapes.unsqueeze, "Squeeze": shapes.squeeze,
    "Split": shapes.split, "Slice": shapes.slice_, "Gather": shapes.gather,
}
# What may compute on shapes (and be dropped: only a Reshape's target reads the result).
SHAPE_OPS = {"Shape", "Gather", "Cast", "Unsqueeze", "Squeeze", "Concat", "Slice", "Constant",
             "Identity", "Add", "Sub", "Mul", "Div", "Reshape"}


def onnx_module(data: bytes, input_shape: tuple[int, int, int] | None = None
                ) -> tuple[fx.GraphModule, OnnxFacts]:
    """The converted network (in eval mode, with the ONNX weights) and the file's facts.
    ``input_shape`` (C, H, W) fixes sizes the file leaves dynamic; it must agree with the rest."""
    try:
        model = load_model(data)
        facts = facts_of(model)
    except OnnxImportError:
        raise
    except OnnxError as error:
        raise OnnxImportError(str(error)) from error
    if input_shape is not None:
        facts = replace(facts, input_shape=_agreed_shape(model, facts, tuple(input_shape)))
    module = _Converter(model, facts).run()
    _trial_run(module, facts)
    return module, facts


def convert_onnx(data: bytes, input_shape: tuple[int, int, int] | None = None
                 ) -> tuple[dict, dict[str, torch.Tensor]]:
    """The graph JSON description and the state dict of the ONNX model in ``data``."""
    from pruning.compact.graphjson import describe

    module, _ = onnx_module(data, input_shape)
    try:
        description = describe(module)
    except ExportError as error:
        raise OnnxImportError(f"the converted network is outside the whitelist: {error}") \
            from error
    state = {key: value.detach().clone() for key, value in module.state_dict().items()}
    return description, state


class _Converter:
    def __init__(self, model, facts: OnnxFacts):
        self.model, self.facts = model, facts
        self.reader = GraphReader(model, facts.input_shape, facts.nhwc_input)
        self.b = Builder(self.reader, facts.input_shape)

    def run(self) -> fx.GraphModule:
        b, reader = self.b, self.reader
        image = graph_input(self.model)
        placeholder = b.placeholder(_plain_name(image.name), image.name)
        if self.facts.nhwc_input:  # the datasets give NCHW already: the transpose goes
            (transpose,) = reader.users[image.name]
            b.acts[transpose.output[0]] = placeholder
            b.done.add(id(transpose))
            reader.shapes[transpose.output[0]] = [reader.shapes.get(image.name, [None] * 4)[i]
                                                  for i in NHWC_TO_NCHW]
        gelus, inner = find_gelus(reader)
        b.done |= inner
        for node in self.model.graph.node:
            if id(node) in b.done:
                continue
            b.current = node
            if id(node) in gelus:
                x, last = gelus[id(node)]
                if x not in b.acts:
                    raise fail(last, f"the GELU's input {x!r} is not an activation")
                b.set(last, b.layer(last, torch.nn.GELU(), b.acts[x]))
                continue
            names = [n for n in node.input if n]
            if node.op_type == "Shape" and names and b.is_act(names[0]):
                reader.shape_of(node, b.symbolic_dims(names[0]), b.sizes(names[0]))
            elif any(b.is_act(n) for n in names):
                handler = HANDLERS.get(node.op_type)
                if handler is None:
                    raise fail(node, "this operator is supported only in shape computations"
                               if node.op_type != "Erf" else
                               "Erf is supported only inside the exact GELU pattern")
                handler(b, node)
            else:
                if node.op_type not in SHAPE_OPS and any(n in reader.shape_pairs for n in names):
                    raise fail(node, "it computes on a tensor's shape in a way the converter "
                                     "cannot follow")
                self._fold(node)
        (output,) = self.model.graph.output
        if output.name not in b.acts:
            raise OnnxImportError(f"the output {output.name!r} does not depend on the input")
        return b.module(b.acts[output.name])

    def _fold(self, node) -> None:
        if node.op_type == "Constant" and "sparse_value" in attributes(node):
            raise fail(node, "sparse constants are not supported")
        self.reader.fold(node)


def _agreed_shape(model, facts: OnnxFacts, shape: tuple) -> tuple[int, int, int]:
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise OnnxImportError(f"input_shape {shape} must be three positive sizes (C, H, W)")
    dims = graph_input(model).type.tensor_type.shape.dim
    if len(dims) != 4:
        raise OnnxImportError(f"the model's input has rank {len(dims)}; images (N, C, H, W) "
                              f"are expected")
    order = (3, 1, 2) if facts.nhwc_input else (1, 2, 3)
    fixed = [dims[i].dim_value if dims[i].HasField("dim_value") else None for i in order]
    if any(f is not None and f != d for f, d in zip(fixed, shape, strict=True)):
        raise OnnxImportError(f"input_shape {shape} disagrees with the model's input "
                              f"{tuple(fixed)} (C, H, W)")
    return shape


def _plain_name(name: str) -> str:
    text = re.sub(r"\W+", "_", name).strip("_")
    return text if text.isidentifier() and text not in ("self",) else "x"


def _trial_run(module: fx.GraphModule, facts: OnnxFacts) -> None:
    """Run the network once on zeros, so a conversion that cannot run fails here, by name."""
    if facts.input_shape is None:
        return
    shape = (2, *facts.input_shape)
    try:
        with torch.no_grad():
            out = module(torch.zeros(shape))
    except Exception as error:  # whatever a layer raises, the conversion is what failed
        raise OnnxImportError(f"the converted network fails on an input of shape {shape}: "
                              f"{error}") from error
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or (
            facts.output_size is not None and out.shape[1] != facts.output_size):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise OnnxImportError(f"the converted network gives {got} for an input of shape "
                              f"{shape}; (2, classes) is expected")
