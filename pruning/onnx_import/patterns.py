"""Operator patterns that stand for one layer. Exporters before opset 20 write the exact GELU as
``x * 0.5 * (1 + erf(x / sqrt(2)))`` in one of a few orders; each match becomes one nn.GELU.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import helper, numpy_helper

from pruning.onnx_import.reader import GraphReader


class _Graph:
    def __init__(self, reader: GraphReader):
        self.reader = reader
        self.producer = {out: node for node in reader.graph.node for out in node.output if out}

    def constant(self, name: str) -> float | None:
        """The one number ``name`` holds, if it is a constant of one element."""
        value = self.reader.constants.get(name)
        node = self.producer.get(name)
        if value is None and node is not None and node.op_type == "Constant":
            attr = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if "value" in attr:
                value = numpy_helper.to_array(attr["value"])
            elif "value_float" in attr:
                value = np.asarray(attr["value_float"])
        return float(np.asarray(value).reshape(-1)[0]) if value is not None and \
            np.asarray(value).size == 1 else None

    def other(self, node, name: str) -> str | None:
        """The operand of a binary node that is not ``name``."""
        rest = [n for n in node.input if n != name]
        return rest[0] if len(node.input) == 2 and len(rest) == 1 else None

    def is_constant(self, node, name: str, value: float) -> bool:
        other = self.other(node, name)
        found = None if other is None else self.constant(other)
        return found is not None and math.isclose(found, value, rel_tol=1e-6)

    def user(self, name: str, op: str):
        node = self.reader.sole_user(name)
        return node if node is not None and node.op_type == op else None


def find_gelus(reader: GraphReader) -> tuple[dict[int, tuple[str, object]], set[int]]:
    """{id(last node): (x, last node)} per exact-GELU pattern, and the ids of its other nodes."""
    g, found, inner = _Graph(reader), {}, set()
    for erf in (n for n in reader.graph.node if n.op_type == "Erf"):
        scaled = g.producer.get(erf.input[0])
        if scaled is None or g.reader.sole_user(scaled.output[0]) is not erf:
            continue
        if scaled.op_type == "Div" and g.constant(scaled.input[1]) is not None and \
                math.isclose(g.constant(scaled.input[1]), math.sqrt(2), rel_tol=1e-6):
            x = scaled.input[0]
        elif scaled.op_type == "Mul" and any(
                g.constant(n) is not None and math.isclose(g.constant(n), math.sqrt(0.5),
                                                           rel_tol=1e-6) for n in scaled.input):
            x = next(n for n in scaled.input if g.constant(n) is None)
        else:
            continue
        plus = g.user(erf.output[0], "Add")
        if plus is None or not g.is_constant(plus, erf.output[0], 1.0):
            continue
        first = g.user(plus.output[0], "Mul")
        if first is None:
            continue
        other = g.other(first, plus.output[0])
        nodes, last = [scaled, erf, plus, first], None
        if other == x:  # (x * (1 + erf)) * 0.5
            last = g.user(first.output[0], "Mul")
            last = last if last is not None and g.is_constant(last, first.output[0], 0.5) else None
        elif other is not None and g.constant(other) is not None:  # ((1 + erf) * 0.5) * x
            if math.isclose(g.constant(other), 0.5):
                last = g.user(first.output[0], "Mul")
                last = last if last is not None and g.other(last, first.output[0]) == x else None
        elif other is not None:  # (x * 0.5) * (1 + erf)
            half = g.producer.get(other)
            if half is not None and half.op_type == "Mul" and g.is_constant(half, x, 0.5) \
                    and g.reader.sole_user(other) is first:
                nodes, last = [scaled, erf, plus, half], first
        if last is not None:
            found[id(last)] = (x, last)
            inner.update(id(n) for n in nodes if n is not last)
    return found, inner
