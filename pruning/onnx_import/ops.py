"""The ONNX operators without weights: activations, arithmetic, pooling and the tensor reshuffles,
each onto a whitelisted layer, function or method. A constant operand that is one number stays a
number in the call; a per-channel constant on an image tensor becomes a depthwise 1x1 Conv2d,
which the dependency graph can prune through; any other constant operand becomes a tensor of the
network's own (a parameter if it was an initializer, a positional embedding say; else a buffer).
"""

from __future__ import annotations

import operator

import numpy as np
import torch
from torch import nn

from pruning.onnx_import.builder import Builder
from pruning.onnx_import.layers import symmetric_padding
from pruning.onnx_import.reader import SHAPE, attributes, exact_float, fail, text

_ARITHMETIC = {"Add": operator.add, "Sub": operator.sub, "Mul": operator.mul,
               "Div": operator.truediv}
_FLOATS = {1, 10, 11, 16}  # TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16


def _layer(factory):
    def handle(b: Builder, node) -> None:
        b.set(node, b.layer(node, factory(attributes(node)), b.act(node)))
    return handle


relu = _layer(lambda a: nn.ReLU())
sigmoid = _layer(lambda a: nn.Sigmoid())
tanh = _layer(lambda a: nn.Tanh())
leaky_relu = _layer(lambda a: nn.LeakyReLU(exact_float(a.get("alpha", 0.01))))
gelu = _layer(lambda a: nn.GELU(approximate=text(a.get("approximate", "none"))))


def alias(b: Builder, node) -> None:
    b.set(node, b.act(node))


def cast(b: Builder, node) -> None:
    if attributes(node).get("to") not in _FLOATS:
        raise fail(node, "casting an activation to a non-float type is not supported")
    alias(b, node)


def _input_or_attr(b: Builder, node, index: int, name: str, since: int):
    if b.reader.opset >= since:
        value = b.reader.constant_input(node, index, what=name)
        return None if value is None else value.tolist()
    return attributes(node).get(name)


def clip(b: Builder, node) -> None:
    low, high = (_input_or_attr(b, node, i, name, 11) for i, name in ((1, "min"), (2, "max")))
    if low == 0 and high == 6:
        module = nn.ReLU6()
    elif low == 0 and high is None:
        module = nn.ReLU()
    elif low is not None and high is not None:
        module = nn.Hardtanh(exact_float(low), exact_float(high))
    else:
        raise fail(node, "a clip with one bound other than min 0 is not supported")
    b.set(node, b.layer(node, module, b.act(node)))


def dropout(b: Builder, node) -> None:
    if len(node.output) > 1 and node.output[1]:
        raise fail(node, "its mask output is not supported")
    if len(node.input) > 2 and node.input[2] and b.reader.constant_input(node, 2, what="mode"):
        raise fail(node, "training-mode dropout in the graph is not supported")
    ratio = _input_or_attr(b, node, 1, "ratio", 12)
    module = nn.Dropout(exact_float(0.5 if ratio is None else ratio))
    b.set(node, b.layer(node, module, b.act(node)))


def softmax(b: Builder, node) -> None:
    rank = b.rank(node, node.input[0])
    axis = attributes(node).get("axis", -1 if b.reader.opset >= 13 else 1) % rank
    # Before opset 13 Softmax normalizes over all dimensions from axis on.
    if b.reader.opset < 13 and axis != rank - 1:
        raise fail(node, f"softmax over dimensions {axis}.. of a rank-{rank} tensor (opset "
                         f"{b.reader.opset}) is not supported")
    b.set(node, b.layer(node, nn.Softmax(dim=axis), b.act(node)))


def arithmetic(b: Builder, node) -> None:
    function = _ARITHMETIC[node.op_type]
    if b.is_act(node.input[0]) and b.is_act(node.input[1]):
        b.set(node, b.call(function, b.act(node, 0), b.act(node, 1)))
        return
    side = 0 if b.is_act(node.input[0]) else 1
    x, other = b.act(node, side), b.kind(node.input[1 - side])
    if other is SHAPE or other is None:
        raise fail(node, "an operand computed from a tensor's shape is not supported")
    dims = b.dims(node.input[side])
    if other.size == 1 and (dims is None or other.ndim <= len(dims)):
        value = float(other.reshape(-1)[0])
        b.set(node, b.call(function, *((x, value) if side == 0 else (value, x))))
        return
    affine = _channel_affine(node.op_type, side, other, dims)
    if affine is not None:
        weight, bias = affine
        module = nn.Conv2d(weight.size, weight.size, 1, groups=weight.size, bias=bias is not None)
        arrays = {"weight": weight.reshape(-1, 1, 1, 1)} | ({"bias": bias} if bias is not None
                                                             else {})
        b.set(node, b.layer(node, module, x, weights=arrays))
        return
    constant = b.constant(node, other, trainable=node.input[1 - side] in b.reader.initializers)
    b.set(node, b.call(function, *((x, constant) if side == 0 else (constant, x))))


def _channel_affine(op: str, side: int, other: np.ndarray, dims):
    """(weight, bias) of the per-channel x*w + b this is, or None."""
    if dims is None or len(dims) != 4 or dims[1] is None:
        return None
    channels = dims[1]
    if other.shape not in ((channels, 1, 1), (1, channels, 1, 1)) or (op == "Div" and side):
        return None
    c = other.reshape(-1).astype(np.float64)
    ones = np.ones_like(c)
    if op == "Add":
        return ones, c
    if op == "Sub":
        return (ones, -c) if side == 0 else (-ones, c)
    return (c, None) if op == "Mul" else (1.0 / c, None)


def concat(b: Builder, node) -> None:
    parts = [b.act(node, i) for i in range(len(node.input))]
    b.set(node, b.call(torch.cat, parts, dim=int(attributes(node)["axis"])))


def _pool_geometry(b: Builder, node):
    attrs = attributes(node)
    kernel = tuple(attrs["kernel_shape"])
    if len(kernel) != 2:
        raise fail(node, f"only 2-D pooling is supported (kernel {kernel})")
    strides = tuple(attrs.get("strides", (1, 1)))
    dilations = tuple(attrs.get("dilations", (1, 1)))
    padding = symmetric_padding(b, node, attrs, kernel, strides, dilations)
    if any(2 * p > k for p, k in zip(padding, kernel, strict=True)):
        raise fail(node, f"padding {padding} exceeds half the kernel {kernel}")
    return attrs, kernel, strides, dilations, padding


def max_pool(b: Builder, node) -> None:
    if len(node.output) > 1 and node.output[1]:
        raise fail(node, "its indices output is not supported")
    attrs, kernel, strides, dilations, padding = _pool_geometry(b, node)
    module = nn.MaxPool2d(kernel, strides, padding, dilations,
                          ceil_mode=bool(attrs.get("ceil_mode", 0)))
    b.set(node, b.layer(node, module, b.act(node)))


def average_pool(b: Builder, node) -> None:
    attrs, kernel, strides, dilations, padding = _pool_geometry(b, node)
    if dilations != (1, 1):
        raise fail(node, "dilated average pooling is not supported")
    module = nn.AvgPool2d(kernel, strides, padding, ceil_mode=bool(attrs.get("ceil_mode", 0)),
                          count_include_pad=bool(attrs.get("count_include_pad", 0)))
    b.set(node, b.layer(node, module, b.act(node)))


def global_pool(b: Builder, node) -> None:
    if b.rank(node, node.input[0]) != 4:
        raise fail(node, "global pooling is supported on image tensors (rank 4) only")
    kind = nn.AdaptiveAvgPool2d if node.op_type == "GlobalAveragePool" else nn.AdaptiveMaxPool2d
    b.set(node, b.layer(node, kind(1), b.act(node)))


def flatten(b: Builder, node) -> None:
    dims = b.dims(node.input[0])
    axis = attributes(node).get("axis", 1)
    axis = axis % len(dims) if dims and axis < 0 else axis
    if axis == 1:
        b.set(node, b.layer(node, nn.Flatten(1, -1), b.act(node)))
    elif axis > 1 and dims is not None and None not in dims[axis:]:
        b.set(node, b.call(torch.reshape, b.act(node), (-1, int(np.prod(dims[axis:])))))
    else:
        raise fail(node, f"flattening from axis {axis} into the batch is not supported")


def transpose(b: Builder, node) -> None:
    perm = attributes(node).get("perm")
    if perm is None:
        perm = list(reversed(range(b.rank(node, node.input[0]))))
    b.set(node, b.call(torch.permute, b.act(node), tuple(int(p) for p in perm)))


def reduce_mean(b: Builder, node) -> None:
    axes = _input_or_attr(b, node, 1, "axes", 18)
    if not axes:
        raise fail(node, "a mean over all dimensions is not supported")
    rank = b.rank(node, node.input[0])
    axes = tuple(sorted(int(a) % rank for a in axes))
    keep = bool(attributes(node).get("keepdims", 1))
    if rank == 4 and axes == (2, 3) and keep:  # global average pooling by another name
        b.set(node, b.layer(node, nn.AdaptiveAvgPool2d(1), b.act(node)))
    else:
        b.set(node, b.call(torch.mean, b.act(node), dim=axes, keepdim=keep))
