"""What the converter knows about an ONNX graph before it maps a node: the constants (initializers,
Constant nodes and whatever folds from them), each tensor's static shape, who reads each tensor,
and the nodes' attributes as plain Python values.

The first dimension of the input is the batch. An export often fixes it (to 1, say); it is made
symbolic before shape inference, so every size that depends on it shows as unknown (None) and
the converted network takes any batch.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from pruneboard.onnx_format import OnnxError


class OnnxImportError(OnnxError):
    """An ONNX model the converter cannot map onto the whitelisted layers; names node and why."""


# A value computed from activations' shapes (Shape -> Gather -> Concat ...) that depends on a size
# not known statically: never emitted. Such values are computed twice, with two made-up sizes for
# every unknown dimension (the batch's are BATCH_SIZES); entries equal in both are static, and a
# value equal in both becomes a plain constant (a Slice end from a static channel count, say).
SHAPE = "shape-of-an-activation"
BATCH_SIZES = (1009, 1013)
BATCH = "batch"  # the symbol shape inference carries for the input's first dimension


def fail(node, why: str) -> OnnxImportError:
    return OnnxImportError(f"{node.op_type} node {node.name or '(unnamed)'!r}: {why}")


class GraphReader:
    def __init__(self, model: onnx.ModelProto, image: tuple[int, ...] | None = None,
                 nhwc: bool = False):
        self.model = model
        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                          1)
        self.constants: dict[str, np.ndarray] = {
            t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.initializers = frozenset(self.constants)
        self.users: dict[str, list] = {}
        for node in self.graph.node:
            for name in node.input:
                if name:
                    self.users.setdefault(name, []).append(node)
        self.outputs = {o.name for o in self.graph.output}
        self.shapes = _infer_shapes(model, image, nhwc)
        self.shape_pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def dims(self, name: str) -> list[int | None] | None:
        """The tensor's dimensions, None where not static; None if not even the rank is known."""
        dims = self.shapes.get(name)
        return None if dims is None else [d if isinstance(d, int) else None for d in dims]

    def symbolic_dims(self, name: str) -> list[int | str | None] | None:
        """As ``dims``, but a dimension that is the batch says ``BATCH``."""
        return self.shapes.get(name)

    def sole_user(self, name: str):
        """The one node that reads ``name``, when exactly one does and it is not a graph output."""
        users = self.users.get(name, [])
        return users[0] if len(users) == 1 and name not in self.outputs else None

    def constant_input(self, node, index: int, *, what: str) -> np.ndarray | None:
        """Input ``index`` as an array (None when absent); refuses an input that is not constant."""
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.constants:
            raise fail(node, f"its {what} ({name!r}) must be a constant")
        return self.constants[name]

    def shape_of(self, node, dims, sizes) -> None:
        """A Shape node on an activation: a constant if every size is static, else a pair. With
        ``sizes`` (the two meta runs') the pair is exact; else unknown sizes are made up."""
        if dims is None:
            raise fail(node, "the rank of its input is not known")
        attrs = attributes(node)
        window = slice(attrs.get("start", 0), attrs.get("end", len(dims)))
        if sizes is None:
            sizes = tuple([d if isinstance(d, int) else BATCH_SIZES[run] if d == BATCH else
                           2003 + 8 * i + run for i, d in enumerate(dims)] for run in (0, 1))
        self._store(node.output[0], *(np.array(s[window], dtype=np.int64) for s in sizes))

    def fold(self, node) -> None:
        """Evaluate a node whose inputs are constants or shape pairs (ONNX's numpy reference ops),
        once per made-up size when a pair is among them."""
        from onnx.reference import ReferenceEvaluator

        names = [name for name in node.input if name]
        runs = (0, 1) if any(name in self.shape_pairs for name in names) else (0,)
        results = []
        for run in runs:
            feeds = {name: self.shape_pairs[name][run] if name in self.shape_pairs else
                     self.constants[name] for name in names}
            try:
                results.append(ReferenceEvaluator(node).run(None, feeds))
            except Exception as error:  # the reference ops raise whatever numpy raises
                raise fail(node, f"cannot evaluate it on its constant inputs: {error}") \
                    from error
        for index, name in enumerate(node.output):
            if name and index < len(results[0]):
                values = [np.asarray(result[index]) for result in results]
                self._store(name, values[0], values[-1])

    def _store(self, name: str, first: np.ndarray, second: np.ndarray) -> None:
        if first.shape == second.shape and np.array_equal(first, second):
            self.constants[name] = first
        else:
            self.shape_pairs[name] = (first, second)

    def shape_target(self, name: str) -> list[int | str | None] | None:
        """A shape pair as a Reshape target: BATCH where it is the batch, None where it depends
        on it otherwise."""
        if name not in self.shape_pairs:
            return None
        first, second = (np.asarray(v).reshape(-1) for v in self.shape_pairs[name])
        return [int(a) if a == b else BATCH if (a, b) == BATCH_SIZES else None
                for a, b in zip(first.tolist(), second.tolist(), strict=True)]


def attributes(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def exact_float(value) -> float:
    """An ONNX float32 attribute as the short decimal it was written as (0.01, not 0.00999...)."""
    return float(str(np.float32(value)))


def _infer_shapes(model: onnx.ModelProto, image, nhwc: bool
                  ) -> dict[str, list[int | str | None]]:
    """Shapes with a symbolic batch and the image's (C, H, W) where the file leaves them open."""
    work = copy.deepcopy(model)
    del work.graph.value_info[:]  # an exporter's own may fix the batch; inference redoes them
    weights = {t.name for t in work.graph.initializer}
    inputs = {value.name for value in work.graph.input}
    for value in list(work.graph.input) + list(work.graph.output):
        if value.name in weights:
            continue
        dims = value.type.tensor_type.shape.dim
        if len(dims):
            dims[0].Clear()
            dims[0].dim_param = BATCH
        if image is not None and value.name in inputs and len(dims) == 4:
            for axis, size in zip((3, 1, 2) if nhwc else (1, 2, 3), image, strict=True):
                dims[axis].Clear()
                dims[axis].dim_value = size
    try:
        work = shape_inference.infer_shapes(work, data_prop=True)
    except Exception:  # inference is a help, not a requirement: sizes it cannot give are unknown
        pass
    shapes = {}
    for value in list(work.graph.input) + list(work.graph.value_info) + list(work.graph.output):
        tensor = value.type.tensor_type
        if tensor.HasField("shape"):
            shapes[value.name] = [
                d.dim_value if d.HasField("dim_value") else
                BATCH if d.dim_param == BATCH else None for d in tensor.shape.dim]
    for name, array in ((t.name, t.dims) for t in model.graph.initializer):
        shapes[name] = list(array)
    return shapes
