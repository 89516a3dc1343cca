"""The ONNX operators with weights, mapped onto the whitelisted layers the dependency graph prunes:
Conv -> Conv2d, BatchNormalization -> BatchNorm2d/1d, Gemm and MatMul (+ Add) with a constant
weight -> Linear, LayerNormalization -> LayerNorm.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pruning.onnx_import.builder import Builder
from pruning.onnx_import.reader import attributes, exact_float, fail, text


def symmetric_padding(b: Builder, node, attrs: dict, kernel, strides, dilations) -> tuple:
    """ONNX pads (begin..., end...) as torch's one padding per side pair, which must agree."""
    auto = text(attrs.get("auto_pad", "NOTSET"))
    if auto in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0] * 2 * len(kernel)))
    elif auto == "VALID":
        pads = [0] * 2 * len(kernel)
    else:  # SAME_UPPER / SAME_LOWER: the output keeps ceil(size / stride)
        pads = [0] * 2 * len(kernel)
        for axis in range(len(kernel)):
            size = b.static_dim(node, node.input[0], axis + 2)
            out = -(-size // strides[axis])
            total = max((out - 1) * strides[axis] + (kernel[axis] - 1) * dilations[axis] + 1
                        - size, 0)
            low = total // 2 if auto == "SAME_UPPER" else total - total // 2
            pads[axis], pads[axis + len(kernel)] = low, total - low
    half = len(pads) // 2
    if pads[:half] != pads[half:]:
        raise fail(node, f"padding {pads} (begin, end) is not symmetric; the whitelist's layers "
                         f"pad both sides alike")
    return tuple(int(p) for p in pads[:half])


def conv(b: Builder, node) -> None:
    weight = b.reader.constant_input(node, 1, what="weight")
    bias = b.reader.constant_input(node, 2, what="bias")
    if weight.ndim != 4:
        raise fail(node, f"only 2-D convolutions are supported (its weight has {weight.ndim} "
                         f"dimensions)")
    attrs = attributes(node)
    kernel = tuple(weight.shape[2:])
    strides = tuple(attrs.get("strides", (1, 1)))
    dilations = tuple(attrs.get("dilations", (1, 1)))
    groups = int(attrs.get("group", 1))
    padding = symmetric_padding(b, node, attrs, kernel, strides, dilations)
    module = nn.Conv2d(weight.shape[1] * groups, weight.shape[0], kernel, strides, padding,
                       dilations, groups, bias=bias is not None)
    arrays = {"weight": weight} | ({"bias": bias} if bias is not None else {})
    b.set(node, b.layer(node, module, b.act(node), weights=arrays))


def batch_norm(b: Builder, node) -> None:
    if any(len(node.output) > i and node.output[i] for i in range(1, 5)):
        raise fail(node, "training-mode batch normalization (running-statistics outputs) is not "
                         "supported; export the model in eval mode")
    scale, shift, mean, var = (b.reader.constant_input(node, i, what=what) for i, what in
                               enumerate(("scale", "bias", "mean", "variance"), start=1))
    attrs = attributes(node)
    rank = b.rank(node, node.input[0])
    kinds = {4: nn.BatchNorm2d, 3: nn.BatchNorm1d, 2: nn.BatchNorm1d}
    if rank not in kinds:
        raise fail(node, f"batch normalization of a rank-{rank} tensor is not supported")
    # ONNX's momentum weighs the old statistics, torch's the new batch.
    momentum = round(1.0 - exact_float(attrs.get("momentum", 0.9)), 6)
    module = kinds[rank](scale.shape[0], eps=exact_float(attrs.get("epsilon", 1e-5)),
                         momentum=momentum)
    arrays = {"weight": scale, "bias": shift, "running_mean": mean, "running_var": var}
    b.set(node, b.layer(node, module, b.act(node), weights=arrays))


def gemm(b: Builder, node) -> None:
    attrs = attributes(node)
    if attrs.get("transA", 0):
        raise fail(node, "a transposed first operand (transA) is not supported")
    weight = b.reader.constant_input(node, 1, what="weight (B)")
    bias = b.reader.constant_input(node, 2, what="bias (C)")
    weight = weight if attrs.get("transB", 0) else weight.T
    weight = weight * attrs.get("alpha", 1.0) if attrs.get("alpha", 1.0) != 1.0 else weight
    if bias is not None:
        bias = _vector(node, bias, weight.shape[0]) * attrs.get("beta", 1.0)
    _linear(b, node, weight, bias)


def matmul(b: Builder, node) -> None:
    right = b.kind(node.input[1])
    if b.is_act(node.input[0]) and b.is_act(node.input[1]):
        b.set(node, b.call(torch.matmul, b.act(node, 0), b.act(node, 1)))
        return
    if not b.is_act(node.input[0]) or not isinstance(right, np.ndarray) or right.ndim != 2:
        raise fail(node, "only activation @ activation, or activation @ a constant 2-D weight, "
                         "is supported")
    weight, bias, add = right.T, None, b.reader.sole_user(node.output[0])
    # MatMul then Add of a constant vector is how exporters write a Linear layer on >2-D inputs.
    if add is not None and add.op_type == "Add":
        other = [n for n in add.input if n != node.output[0]]
        value = b.reader.constants.get(other[0]) if len(other) == 1 else None
        if value is not None and value.size == weight.shape[0] and value.ndim <= 2 \
                and value.shape[-1] == weight.shape[0]:
            bias = value.reshape(-1)
    out = _linear(b, node, weight, bias)
    if bias is not None:
        b.done.add(id(add))
        b.acts[add.output[0]] = out


def _linear(b: Builder, node, weight: np.ndarray, bias: np.ndarray | None):
    module = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    arrays = {"weight": weight} | ({"bias": bias} if bias is not None else {})
    out = b.layer(node, module, b.act(node), weights=arrays)
    b.set(node, out)
    return out


def _vector(node, value: np.ndarray, size: int) -> np.ndarray:
    if value.size == 1:
        return np.full(size, value.reshape(-1)[0], dtype=value.dtype)
    if value.size != size or value.shape[-1] != size:
        raise fail(node, f"its bias has shape {value.shape}; one value per output ({size}) is "
                         f"expected")
    return value.reshape(-1)


def layer_norm(b: Builder, node) -> None:
    if any(len(node.output) > i and node.output[i] for i in (1, 2)):
        raise fail(node, "its mean and inverse-deviation outputs are not supported")
    scale = b.reader.constant_input(node, 1, what="scale")
    shift = b.reader.constant_input(node, 2, what="bias")
    attrs = attributes(node)
    dims = b.dims(node.input[0])
    if dims is None:
        raise fail(node, "the rank of its input is not known")
    axis = attrs.get("axis", -1) % len(dims)
    shape = tuple(dims[axis:])
    if None in shape or shape != tuple(scale.shape):
        raise fail(node, f"it normalizes over dimensions {shape} with a scale of shape "
                         f"{scale.shape}; both must be static and agree")
    module = nn.LayerNorm(shape, eps=exact_float(attrs.get("epsilon", 1e-5)),
                          bias=shift is not None)
    arrays = {"weight": scale} | ({"bias": shift} if shift is not None else {})
    b.set(node, b.layer(node, module, b.act(node), weights=arrays))
