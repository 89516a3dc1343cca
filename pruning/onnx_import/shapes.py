"""The operators that move an activation's elements around without computing: Reshape, Unsqueeze,
Squeeze, Split, and Slice and Gather (as ``getitem`` with slices).

A Reshape target must come out as static sizes with the batch in one place (-1): exporters
compute it from the input's shape at run time (Shape -> Gather -> Concat), or fix the batch an
export was traced with; both are read through shape inference with a symbolic batch.
"""

from __future__ import annotations

import operator

import numpy as np
import torch

from pruning.onnx_import.builder import Builder
from pruning.onnx_import.reader import BATCH, SHAPE, attributes, fail


def reshape(b: Builder, node) -> None:
    source = b.dims(node.input[0])
    target = b.kind(node.input[1])
    if target is SHAPE:
        target = b.reader.shape_target(node.input[1])
    elif target is None:
        target = b.symbolic_dims(node.output[0])
    else:
        target = [int(v) for v in np.asarray(target).reshape(-1)]
        if not attributes(node).get("allowzero", 0):  # 0 copies the input's size there
            symbolic = b.symbolic_dims(node.input[0]) or []
            target = [(symbolic[i] if i < len(symbolic) else None) if v == 0 else v
                      for i, v in enumerate(target)]
    resolved = _resolve(source, target)
    if resolved is None:
        raise fail(node, f"the target shape {target} of a {source} input is not known statically "
                         f"up to one batch-dependent dimension")
    b.set(node, b.call(torch.reshape, b.act(node), resolved))


def _resolve(source, target) -> tuple[int, ...] | None:
    """The static target with -1 for the one batch-dependent dimension, or None."""
    if not target:
        return None
    rest = source[1:] if source else None
    per_sample = int(np.prod(rest)) if rest and None not in rest else None
    head = target[0]
    tail = [v if isinstance(v, int) else -1 for v in target[1:]]
    # The batch stays in front and the rest holds one sample (an export's fixed batch of 1, too).
    if per_sample is not None and head in (BATCH, -1, None, 1):
        if head in (BATCH, 1) and tail.count(-1) == 1:
            known = int(np.prod([v for v in tail if v != -1]))
            if known and per_sample % known == 0:
                tail[tail.index(-1)] = per_sample // known
        if -1 not in tail and int(np.prod(tail)) == per_sample:
            return (-1, *tail)
    # Otherwise the batch may be folded into one dimension, all others static.
    unknown = [i for i, v in enumerate(target) if not isinstance(v, int) or v == -1]
    if len(unknown) == 1:
        return tuple(-1 if i == unknown[0] else int(v) for i, v in enumerate(target))
    return None


def _axes(b: Builder, node, since: int = 13) -> list[int] | None:
    if b.reader.opset >= since:
        value = b.reader.constant_input(node, 1, what="axes")
        return None if value is None else [int(v) for v in value.reshape(-1)]
    axes = attributes(node).get("axes")
    return None if axes is None else [int(v) for v in axes]


def unsqueeze(b: Builder, node) -> None:
    axes = _axes(b, node)
    rank = b.rank(node, node.input[0]) + len(axes)
    out = b.act(node)
    for axis in sorted(a % rank for a in axes):
        out = b.method("unsqueeze", out, axis)
    b.set(node, out)


def squeeze(b: Builder, node) -> None:
    dims = b.dims(node.input[0])
    if dims is None:
        raise fail(node, "the rank of its input is not known")
    axes = _axes(b, node)
    if axes is None:
        axes = [i for i, d in enumerate(dims) if d == 1]
    out = b.act(node)
    for axis in sorted((a % len(dims) for a in axes), reverse=True):
        out = b.method("squeeze", out, axis)
    b.set(node, out)


def split(b: Builder, node) -> None:
    attrs = attributes(node)
    axis = int(attrs.get("axis", 0))
    sizes = (_axes(b, node) if b.reader.opset >= 13 else attrs.get("split"))
    if sizes is None:
        size = b.static_dim(node, node.input[0], axis)
        count = len(node.output)
        sizes = [-(-size // count)] * (count - 1)
        sizes.append(size - sum(sizes))
    parts = b.method("split", b.act(node), [int(s) for s in sizes], axis)
    for index, name in enumerate(node.output):
        if name:
            b.acts[name] = b.call(operator.getitem, parts, index)


_BOUND = 1 << 62  # ONNX writes "to the end" as INT64_MAX; the graph format stops at 2**62


def _index(axis: int, item) -> tuple:
    """``item`` along ``axis``, for operator.getitem: slice(None) before it, or an Ellipsis."""
    if axis >= 0:
        return (*(slice(None),) * axis, item)
    return (Ellipsis, item, *(slice(None),) * (-axis - 1))


def _piece(b: Builder, node, x, axis: int, start: int, end: int, step: int):
    """x[start:end:step] along ``axis``. With a static size and step 1 it is the middle piece of a
    ``split``: the dependency graph keeps the channels of a split dense, as it does for a torch
    model's chunk (a slice it would not see as re-indexing)."""
    dims = b.dims(node.input[0])
    size = dims[axis] if dims is not None and -len(dims) <= axis < len(dims) else None
    if size is None or step != 1:
        bound = slice(start or None, None if end >= _BOUND else end, None if step == 1 else step)
        return b.call(operator.getitem, x, _index(axis, bound))
    start, end = (max(0, min(size, v + size if v < 0 else v)) for v in (start, end))
    if start >= end:
        raise fail(node, f"it takes an empty slice [{start}:{end}] of dimension {axis}")
    if (start, end) == (0, size):
        return x
    sizes = [s for s in (start, end - start, size - end) if s]
    return b.call(operator.getitem, b.method("split", x, sizes, axis), 1 if start else 0)


def slice_(b: Builder, node) -> None:
    if b.reader.opset >= 10:
        starts, ends, axes, steps = (b.reader.constant_input(node, i, what=what) for i, what in
                                     enumerate(("starts", "ends", "axes", "steps"), start=1))
    else:
        attrs = attributes(node)
        starts, ends, axes, steps = (attrs.get(k) for k in ("starts", "ends", "axes", "steps"))
    starts, ends = (np.asarray(v).reshape(-1).tolist() for v in (starts, ends))
    axes = list(range(len(starts))) if axes is None else np.asarray(axes).reshape(-1).tolist()
    steps = [1] * len(starts) if steps is None else np.asarray(steps).reshape(-1).tolist()
    if any(step < 1 for step in steps):
        raise fail(node, "slices with a negative step are not supported")
    out = b.act(node)
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
        start, end = (max(-_BOUND, min(_BOUND, int(v))) for v in (start, end))
        out = _piece(b, node, out, int(axis), start, end, int(step))
    b.set(node, out)


def gather(b: Builder, node) -> None:
    indices = b.reader.constant_input(node, 1, what="indices")
    if indices.size != 1 or indices.ndim > 1:
        raise fail(node, "only gathering one constant index from an activation is supported")
    axis, index = int(attributes(node).get("axis", 0)), int(indices.reshape(-1)[0])
    out = _piece(b, node, b.act(node), axis, index, index + 1 or _BOUND, 1)
    # A 0-d index drops the axis (x[:, i]); a 1-element vector keeps it (x[:, i:i+1]).
    b.set(node, b.method("squeeze", out, axis) if indices.ndim == 0 else out)
