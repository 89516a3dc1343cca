"""The graph JSON format, a network's architecture as plain data, and the whitelist it draws from.

This module is the one list of what a graph may name. It imports no torch: the API checks an
upload with ``check_description`` before storing it; ``pruning.compact.graphjson`` writes the
format (``describe``) and resolves these same names to torch objects to rebuild a network, so
rebuilding runs no code the file names. A description is::

    {"modules": {"features.0": {"type": "Conv2d", "args": {"in_channels": 3, ...}}, ...},
     "parameters": {"pos_embed": {"shape": [1, 16, 32], "dtype": "float32",
                                  "buffer": false, "requires_grad": true}, ...},
     "graph": [{"name": "x", "op": "placeholder", "target": "x", "args": [], "kwargs": {}},
               {"name": "conv", "op": "call_module", "target": "features.0",
                "args": [{"node": "x"}], "kwargs": {}}, ...,
               {"name": "output", "op": "output", "target": "output",
                "args": [{"node": "fc"}], "kwargs": {}}]}

``graph`` is a torch.fx graph: ``op`` is placeholder, get_attr (a tensor the network owns
directly, declared under ``parameters``, optional), call_module (a layer under ``modules``),
call_function (a name in ``FUNCTIONS``), call_method (a name in ``METHODS``, called on a node) or
output (the one last node). Arguments are JSON values, ``{"node": name}`` for an earlier node,
``{"tuple": [...]}``, ``{"slice": [start, stop, step]}`` and ``{"ellipsis": true}``.
``builtins.getattr`` may read only the attributes in ``ATTRIBUTES`` (``x.shape``).
"""

from __future__ import annotations

import keyword
import math

from pruneboard.graph_values import (
    is_int,
    is_node,
    plain_problem,
    value_problem,
)

_NORM = ("num_features", "eps", "momentum", "affine", "track_running_stats")
_POOL = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
# Layer type (a class of torch.nn) -> its constructor arguments, which are also the attributes
# they are read back from (``bias`` is a flag: whether the layer has one).
MODULES: dict[str, tuple[str, ...]] = {
    "Conv2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
               "groups", "bias", "padding_mode"),
    "Linear": ("in_features", "out_features", "bias"),
    "BatchNorm1d": _NORM,
    "BatchNorm2d": _NORM,
    "LayerNorm": ("normalized_shape", "eps", "elementwise_affine", "bias"),
    "ReLU": ("inplace",),
    "ReLU6": ("inplace",),
    "LeakyReLU": ("negative_slope", "inplace"),
    "GELU": ("approximate",),
    "SiLU": ("inplace",),
    "Tanh": (),
    "Sigmoid": (),
    "Hardtanh": ("min_val", "max_val", "inplace"),
    "Identity": (),
    "Dropout": ("p", "inplace"),
    "Dropout2d": ("p", "inplace"),
    "MaxPool2d": _POOL,
    "AvgPool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                  "divisor_override"),
    "AdaptiveAvgPool2d": ("output_size",),
    "AdaptiveMaxPool2d": ("output_size",),
    "Flatten": ("start_dim", "end_dim"),
    "Softmax": ("dim",),
}
# Pure tensor (and shape) arithmetic only: nothing that reads or writes files, allocates by a
# size the file chooses, or runs code.
FUNCTIONS: frozenset[str] = frozenset({
    "operator.add", "operator.sub", "operator.mul", "operator.truediv", "operator.floordiv",
    "operator.neg", "operator.matmul", "operator.getitem", "builtins.getattr", "math.sqrt",
    "torch.add", "torch.sub", "torch.mul", "torch.div", "torch.matmul", "torch.cat",
    "torch.stack", "torch.flatten", "torch.reshape", "torch.transpose", "torch.permute",
    "torch.squeeze", "torch.unsqueeze", "torch.chunk", "torch.split", "torch.sum", "torch.mean",
    "torch.relu", "torch.tanh", "torch.sigmoid", "torch.softmax",
    "F.relu", "F.relu6", "F.gelu", "F.silu", "F.leaky_relu", "F.hardtanh", "F.dropout",
    "F.softmax", "F.layer_norm", "F.linear", "F.max_pool2d", "F.avg_pool2d",
    "F.adaptive_avg_pool2d", "F.adaptive_max_pool2d",
})
METHODS: frozenset[str] = frozenset({
    "relu", "flatten", "view", "reshape", "size", "mean", "sum", "contiguous", "add", "sub",
    "mul", "div", "transpose", "permute", "softmax", "matmul", "unsqueeze", "squeeze", "chunk",
    "split", "sigmoid", "tanh", "expand",
})
ATTRIBUTES: frozenset[str] = frozenset({"shape"})
OPS = ("placeholder", "get_attr", "call_module", "call_function", "call_method", "output")
DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "bool")
# A description past these is refused before anything is built (a file may not make a worker
# allocate what it likes): nodes, nesting of arguments, elements of the declared tensors.
MAX_NODES, MAX_ELEMENTS = 100_000, 1 << 31
_MAX_PROBLEMS = 50


def check_description(description) -> list[str]:
    """Everything wrong with ``description``'s structure and names (empty: it may be rebuilt).
    Each problem names the node or layer and the offending name."""
    if not isinstance(description, dict):
        return ["the description must be a JSON object with modules and graph"]
    problems: list[str] = []
    modules, nodes = description.get("modules"), description.get("graph")
    tensors = description.get("parameters", {})
    if not isinstance(modules, dict):
        problems.append("modules must be an object: layer name -> {type, args}")
        modules = {}
    if not isinstance(tensors, dict):
        problems.append("parameters must be an object: name -> {shape, dtype, buffer, "
                        "requires_grad}")
        tensors = {}
    if not isinstance(nodes, list) or not nodes:
        problems.append("graph must be a non-empty list of nodes")
        nodes = []
    if len(modules) > MAX_NODES or len(tensors) > MAX_NODES:
        return problems + [f"more than {MAX_NODES} layers or parameters"]
    for name, spec in modules.items():
        problems += _module_problems(name, spec)
    if not problems:
        # Rebuilding allocates every layer's weights: a forged Linear(10**9, 10**9) would take
        # the worker's memory before anything could refuse it.
        weights = sum(_layer_elements(spec["type"], spec["args"]) for spec in modules.values())
        if weights > MAX_ELEMENTS:
            problems.append(f"the layers hold about {weights} weights, more than {MAX_ELEMENTS}")
    problems += _tensor_problems(tensors, modules)
    if len(nodes) > MAX_NODES:
        return problems + [f"the graph has {len(nodes)} nodes, more than {MAX_NODES}"]
    problems += _graph_problems(nodes, modules, tensors)
    return problems[:_MAX_PROBLEMS]


def path_problem(name) -> str | None:
    """Why ``name`` cannot name a layer or tensor: dotted parts, each a plain identifier (not
    a dunder name) or digits (a Sequential's children)."""
    if not isinstance(name, str) or not name:
        return f"{name!r} is not a plain name"
    for part in name.split("."):
        if not part.isdigit() and (name_problem(part) or part.startswith("__")):
            return f"{name!r} is not a plain name"
    return None


def name_problem(text) -> str | None:
    """Why ``text`` cannot be a node, placeholder or keyword name: torch.fx writes these into
    the Python source of forward(), where anything but a plain identifier could be code."""
    if not isinstance(text, str) or not text.isidentifier() or keyword.iskeyword(text):
        return f"{text!r} is not a plain name"
    return None


def _layer_elements(kind: str, args: dict) -> int:
    """The weights a whitelisted layer's constructor allocates (0 for layers without any)."""
    def number(key: str, default: int = 1) -> int:
        value = args.get(key, default)
        if isinstance(value, dict) and isinstance(value.get("tuple"), list):
            value = value["tuple"]
        if isinstance(value, list):
            product = 1
            for item in value:
                product *= item if isinstance(item, int) and item > 0 else 1
            return product
        return value if isinstance(value, int) and value > 0 else default

    if kind.startswith("Conv"):
        return (number("in_channels") // max(number("groups"), 1) * number("out_channels")
                * number("kernel_size"))
    if kind == "Linear":
        return number("in_features") * number("out_features")
    if "Norm" in kind:
        return 4 * max(number("num_features"), number("normalized_shape"))
    return 0


def _module_problems(name, spec) -> list[str]:
    problem = path_problem(name)
    if problem:
        return [f"layer {problem}"]
    kind = spec.get("type") if isinstance(spec, dict) else spec
    if not isinstance(spec, dict) or not isinstance(kind, str) or kind not in MODULES:
        return [f"layer {name} has type {kind!r}, which is not in the whitelist of layer types"]
    args = spec.get("args")
    if not isinstance(args, dict):
        return [f"layer {name} ({kind}): args must be an object"]
    if set(args) != set(MODULES[kind]):
        return [f"layer {name} ({kind}) has arguments {sorted(args)}; expected "
                f"{sorted(MODULES[kind])}"]
    return [f"layer {name} ({kind}) argument {key}: {problem}" for key, value in args.items()
            if (problem := plain_problem(value, 0))]


def _tensor_problems(tensors: dict, modules: dict) -> list[str]:
    problems, total = [], 0
    for name, spec in tensors.items():
        problem = path_problem(name)
        if problem:
            problems.append(f"parameter {problem}")
            continue
        if name in modules:
            problems.append(f"parameter {name} has the name of a layer")
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if not isinstance(shape, list) or not all(is_int(d) and 0 <= d for d in shape):
            problems.append(f"parameter {name}: shape must be a list of sizes")
            continue
        total += math.prod(shape)
        if spec.get("dtype", "float32") not in DTYPES:
            problems.append(f"parameter {name}: dtype {spec.get('dtype')!r} is not one of "
                            f"{list(DTYPES)}")
        for flag in ("buffer", "requires_grad"):
            if not isinstance(spec.get(flag, False), bool):
                problems.append(f"parameter {name}: {flag} must be true or false")
        if set(spec) - {"shape", "dtype", "buffer", "requires_grad"}:
            problems.append(f"parameter {name}: unknown fields "
                            f"{sorted(set(spec) - {'shape', 'dtype', 'buffer', 'requires_grad'})}")
    if total > MAX_ELEMENTS:
        problems.append(f"the parameters hold {total} elements, more than {MAX_ELEMENTS}")
    return problems


def _graph_problems(nodes: list, modules: dict, tensors: dict) -> list[str]:
    problems, made = [], set()
    outputs = [i for i, n in enumerate(nodes) if isinstance(n, dict) and n.get("op") == "output"]
    if outputs != [len(nodes) - 1] and nodes:
        problems.append("the graph must end with its one output node")
    if nodes and not any(isinstance(n, dict) and n.get("op") == "placeholder" for n in nodes):
        problems.append("the graph has no input (placeholder) node")
    for index, node in enumerate(nodes):
        if not isinstance(node, dict):
            problems.append(f"node {index} is not an object")
            continue
        label = f"node {index}" + (f" ({node['name']})" if isinstance(node.get("name"), str)
                                   else "")
        node_problems = _node_problems(node, label, made, modules, tensors)
        problems += node_problems
        if isinstance(node.get("name"), str):
            made.add(node["name"])
    return problems


def _node_problems(node: dict, label: str, made: set, modules: dict, tensors: dict) -> list[str]:
    op, target = node.get("op"), node.get("target")
    args, kwargs = node.get("args"), node.get("kwargs", {})
    if (problem := name_problem(node.get("name"))) or node["name"] in made:
        return [f"{label}: {problem or 'its name is used by an earlier node'}"]
    if not isinstance(op, str) or op not in OPS:
        return [f"{label} has op {op!r}, not one of {list(OPS)}"]
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        return [f"{label}: args must be a list and kwargs an object"]
    problems = [f"{label}: keyword {problem}" for key in kwargs if (problem := name_problem(key))]
    problems += [f"{label}: {problem}" for value in [*args, *kwargs.values()]
                 if (problem := value_problem(value, made, 0))]
    if op == "placeholder":
        if (problem := name_problem(target)) or args or kwargs:
            problems.append(f"{label}: {problem or 'an input takes no arguments'}")
    elif op == "get_attr":
        if not isinstance(target, str) or target not in tensors or args or kwargs:
            problems.append(f"{label} reads {target!r}, which is not a declared parameter")
    elif op == "call_module":
        if not isinstance(target, str) or target not in modules:
            problems.append(f"{label} calls layer {target!r}, which is not declared")
    elif op == "call_function":
        if not isinstance(target, str) or target not in FUNCTIONS:
            problems.append(f"{label} calls function {target!r}, which is not in the whitelist")
        elif target == "builtins.getattr" and not (
                len(args) == 2 and is_node(args[0]) and isinstance(args[1], str)
                and args[1] in ATTRIBUTES and not kwargs):
            problems.append(f"{label}: getattr may only read {sorted(ATTRIBUTES)} of a node")
    elif op == "call_method":
        if not isinstance(target, str) or target not in METHODS:
            problems.append(f"{label} calls method {target!r}, which is not in the whitelist")
        elif not args or not is_node(args[0]):
            problems.append(f"{label}: method {target!r} must be called on a node")
    elif len(args) != 1 or kwargs:
        problems.append(f"{label}: the output node must have one argument")
    return problems
