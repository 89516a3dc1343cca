"""The torch.fx graph a conversion writes: whitelisted layers (with the ONNX weights copied in),
whitelisted functions and methods, and the ONNX tensor each node stands for.

Layer names come from the exporter's parameter names ("layer1.0.conv1.weight" -> layer1_0_conv1)
or its node scopes ("/blocks/blocks.0/attn/q/MatMul" -> blocks_0_attn_q), flattened so that no
layer is another's parent; the state dict keys follow.
"""

from __future__ import annotations

import keyword
import re
from functools import partial

import numpy as np
import torch
from torch import fx, nn

from pruning.onnx_import.reader import BATCH, BATCH_SIZES, SHAPE, GraphReader, fail

_GENERATED = re.compile(r"::|^val_|^onnx_|^_v_|^const", re.IGNORECASE)


def _reserved() -> frozenset[str]:
    graph = fx.Graph()
    graph.output(graph.placeholder("x"))
    return frozenset(dir(fx.GraphModule(nn.Module(), graph)))


# What every GraphModule has (forward, graph, training, ...): no layer may be called that.
_RESERVED = _reserved()


class Builder:
    """``acts`` maps ONNX tensor names to fx nodes. With a static input every node is also run on
    meta tensors twice, with batches of ``BATCH_SIZES``: exact sizes, and which depend on the
    batch, where ONNX shape inference may have given up."""

    def __init__(self, reader: GraphReader, input_shape: tuple[int, ...] | None):
        self.reader = reader
        self.graph = fx.Graph()
        self.modules: dict[str, nn.Module] = {}
        self.tensors: dict[str, torch.Tensor] = {}
        self.acts: dict[str, fx.Node] = {}
        self.done: set[int] = set()  # ids of ONNX nodes another node's mapping took in
        self.current = None  # the ONNX node being mapped, for messages
        self.input_shape = input_shape
        self.meta: dict[fx.Node, tuple] | None = {} if input_shape is not None else None

    def placeholder(self, name: str, onnx_name: str) -> fx.Node:
        node = self.graph.placeholder(name)
        if self.meta is not None:
            self.meta[node] = tuple(torch.empty(size, *self.input_shape, device="meta")
                                    for size in BATCH_SIZES)
        self.acts[onnx_name] = node
        return node

    def is_act(self, name: str) -> bool:
        return name in self.acts

    def act(self, node, index: int = 0) -> fx.Node:
        name = node.input[index] if index < len(node.input) else ""
        if name not in self.acts:
            kind = "a shape computation" if name in self.reader.shape_pairs else "a constant"
            raise fail(node, f"input {index} ({name!r}) is {kind}; an activation is expected")
        return self.acts[name]

    def kind(self, name: str):
        if name in self.acts:
            return self.acts[name]
        if name in self.reader.shape_pairs:
            return SHAPE
        return self.reader.constants.get(name)

    def set(self, node, value: fx.Node, index: int = 0) -> None:
        self.acts[node.output[index]] = value

    def sizes(self, name: str) -> tuple | None:
        """The two meta runs' sizes of an activation (None without a static input)."""
        node = self.acts.get(name)
        if node is None or self.meta is None or not isinstance(self.meta[node][0], torch.Tensor):
            return None
        return tuple(tuple(t.shape) for t in self.meta[node])

    def symbolic_dims(self, name: str) -> list[int | str | None] | None:
        """Static sizes as ints, the batch as BATCH, other batch-dependent sizes as None."""
        sizes = self.sizes(name)
        if sizes is None:
            return self.reader.symbolic_dims(name)
        return [a if a == b else BATCH if (a, b) == BATCH_SIZES else None
                for a, b in zip(*sizes, strict=True)]

    def dims(self, name: str) -> list[int | None] | None:
        dims = self.symbolic_dims(name)
        return None if dims is None else [d if isinstance(d, int) else None for d in dims]

    def rank(self, node, name: str) -> int:
        dims = self.dims(name)
        if dims is None:
            raise fail(node, f"the rank of its input {name!r} is not known")
        return len(dims)

    def static_dim(self, node, name: str, axis: int) -> int:
        dims = self.dims(name)
        size = None if dims is None else dims[axis]
        if size is None:
            raise fail(node, f"dimension {axis} of {name!r} is not known statically")
        return size

    def layer(self, node, module: nn.Module, *args, weights: dict | None = None) -> fx.Node:
        """Add ``module`` (its parameters and buffers set from ``weights``) and call it."""
        with torch.no_grad():
            for key, array in (weights or {}).items():
                target = module.get_parameter(key) if key in dict(module.named_parameters()) \
                    else module.get_buffer(key)
                value = torch.from_numpy(np.array(array, copy=True)).to(target.dtype)
                if tuple(value.shape) != tuple(target.shape):
                    raise fail(node, f"its {key} has shape {tuple(value.shape)}, the layer's is "
                                     f"{tuple(target.shape)}")
                target.copy_(value)
        name = self._unique(self._stem(node))
        self.modules[name] = module.eval()
        return self._run(self.graph.call_module(name, args), partial(_on_meta, module))

    def call(self, function, *args, **kwargs) -> fx.Node:
        return self._run(self.graph.call_function(function, args, kwargs), function)

    def method(self, name: str, *args, **kwargs) -> fx.Node:
        return self._run(self.graph.call_method(name, args, kwargs),
                         lambda this, *rest, **options: getattr(this, name)(*rest, **options))

    def constant(self, node, array: np.ndarray, *, trainable: bool) -> fx.Node:
        """A constant tensor as a get_attr node: a parameter of the converted network (trainable)
        or a buffer."""
        name = self._unique(self._stem(node) + ("" if trainable else "_const"))
        tensor = torch.from_numpy(np.array(array, copy=True)).to(torch.float32)
        self.tensors[name] = nn.Parameter(tensor) if trainable else tensor
        out = self.graph.get_attr(name)
        if self.meta is not None:
            self.meta[out] = (self.tensors[name].to("meta"),) * 2
        return out

    def _run(self, out: fx.Node, function) -> fx.Node:
        if self.meta is None:
            return out
        results = []
        for run in (0, 1):
            args, kwargs = fx.node.map_arg((out.args, out.kwargs),
                                           lambda n, run=run: self.meta[n][run])
            try:
                results.append(function(*args, **kwargs))
            except Exception as error:  # torch's own shape checks, whatever they raise
                raise fail(self.current, f"its operands do not fit together: {error}") \
                    from error
        self.meta[out] = tuple(results)
        return out

    def _stem(self, node) -> str:
        weight = node.input[1] if len(node.input) > 1 else ""
        # A weight the exporter named after the model's parameter, not an output of its own.
        if weight in self.reader.initializers and not _GENERATED.search(weight) \
                and not re.search(r"[/:]", weight):
            base = weight.rsplit(".", 1)[0] if "." in weight else weight
        else:
            parts = [p for p in (node.name or "").strip("/").split("/") if p]
            if len(parts) > 1:
                parts = parts[:-1]
            elif parts and parts[0].lower().startswith(node.op_type.lower()):
                parts = []  # "/Relu_3": the exporter's name for the operator, nothing more
            # Scopes repeat their parent ("layer1", "layer1.0"): keep the innermost of each run.
            base = "_".join(p for i, p in enumerate(parts)
                            if not (i + 1 < len(parts) and parts[i + 1].startswith(p + ".")))
        base = re.sub(r"\W+", "_", base).strip("_") or node.op_type.lower()
        if base[0].isdigit() or keyword.iskeyword(base) or base in _RESERVED or \
                base.startswith("__"):
            base = f"{node.op_type.lower()}_{base}"
        return base

    def _unique(self, base: str) -> str:
        name, count = base, 1
        while name in self.modules or name in self.tensors:
            count += 1
            name = f"{base}_{count}"
        return name

    def module(self, output: fx.Node) -> fx.GraphModule:
        self.graph.output(output)
        root = nn.Module()
        for name, module in self.modules.items():
            root.add_module(name, module)
        for name, tensor in self.tensors.items():
            if isinstance(tensor, nn.Parameter):
                root.register_parameter(name, tensor)
            else:
                root.register_buffer(name, tensor)
        return fx.GraphModule(root, self.graph, class_name="ConvertedOnnx").eval()


def _on_meta(module: nn.Module, *args):
    state = {name: torch.empty_like(t, device="meta") for name, t in
             list(module.named_parameters()) + list(module.named_buffers())}
    return torch.func.functional_call(module, state, args)
