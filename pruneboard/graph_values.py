"""The values a graph JSON may hold (``pruneboard.graph_format``): node references, tuples,
slices and plain scalars, bounded in depth and size. Torch-free, like the format itself."""

from __future__ import annotations

import math

# Nesting of arguments, and the largest integer a file may write.
MAX_DEPTH, MAX_INT = 16, 1 << 62


def value_problem(value, made: set, depth: int) -> str | None:
    """Why an argument of a node is malformed: an unknown node, a non-plain value, too deep."""
    if depth > MAX_DEPTH:
        return "arguments are nested too deeply"
    if isinstance(value, dict):
        if set(value) == {"node"}:
            return None if is_node(value) and value["node"] in made else \
                f"reference to unknown or later node {value['node']!r}"
        if set(value) == {"tuple"} and isinstance(value["tuple"], list):
            return next((p for v in value["tuple"] if (p := value_problem(v, made, depth + 1))),
                        None)
        if set(value) == {"slice"} and isinstance(value["slice"], list) \
                and len(value["slice"]) == 3:
            return next((p for v in value["slice"] if (p := bound_problem(v, made))), None)
        if value == {"ellipsis": True}:
            return None
        return f"unexpected argument {value!r}"
    if isinstance(value, list):
        return next((p for v in value if (p := value_problem(v, made, depth + 1))), None)
    return scalar_problem(value)


def bound_problem(bound, made: set) -> str | None:
    if bound is None or is_int(bound):
        return None
    if is_node(bound):
        return None if bound["node"] in made else \
            f"reference to unknown or later node {bound['node']!r}"
    return f"slice bounds must be integers, nodes or null, not {bound!r}"


def plain_problem(value, depth: int) -> str | None:
    """Why a layer's constructor argument is not plain data (numbers, strings, tuples)."""
    if depth > MAX_DEPTH:
        return "nested too deeply"
    if isinstance(value, dict):
        if set(value) == {"tuple"} and isinstance(value["tuple"], list):
            return next((p for v in value["tuple"] if (p := plain_problem(v, depth + 1))), None)
        return f"{value!r} is not a plain value"
    if isinstance(value, list):
        return next((p for v in value if (p := plain_problem(v, depth + 1))), None)
    return scalar_problem(value)


def scalar_problem(value) -> str | None:
    if value is None or isinstance(value, bool | str):
        return None
    if is_int(value):
        return None if abs(value) <= MAX_INT else f"integer {value} is out of range"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value!r} is not a finite number"
    return f"{value!r} is not a plain value"


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_node(value) -> bool:
    return isinstance(value, dict) and set(value) == {"node"} and isinstance(value["node"], str)
