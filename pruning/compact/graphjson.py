"""A network's architecture as plain JSON: its torch.fx graph and the constructor arguments of its
layers, each drawn from a whitelist, so rebuilding it runs no code named by the file.

``describe(model)`` gives ``{"modules": {name: {"type", "args"}}, "graph": [node, ...]}``. A node is
``{"name", "op", "target", "args", "kwargs"}``; in arguments a reference to an earlier node is
``{"node": name}`` and a tuple ``{"tuple": [...]}``, everything else is a JSON number, string,
bool, null or list. ``rebuild(description)`` checks every type, target and argument against the
whitelists and returns an ``fx.GraphModule`` with freshly initialised weights, in eval mode.
"""

from __future__ import annotations

import keyword
import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from pruning.compact.errors import ExportError

# Layer type -> the constructor arguments, read back from attributes of the same name (``bias``
# is a flag: whether the layer has one).
MODULES: dict[str, tuple[type[nn.Module], tuple[str, ...]]] = {
    "Conv2d": (nn.Conv2d, ("in_channels", "out_channels", "kernel_size", "stride", "padding",
                           "dilation", "groups", "bias", "padding_mode")),
    "Linear": (nn.Linear, ("in_features", "out_features", "bias")),
    "BatchNorm1d": (nn.BatchNorm1d, ("num_features", "eps", "momentum", "affine",
                                     "track_running_stats")),
    "BatchNorm2d": (nn.BatchNorm2d, ("num_features", "eps", "momentum", "affine",
                                     "track_running_stats")),
    "ReLU": (nn.ReLU, ("inplace",)),
    "ReLU6": (nn.ReLU6, ("inplace",)),
    "LeakyReLU": (nn.LeakyReLU, ("negative_slope", "inplace")),
    "GELU": (nn.GELU, ("approximate",)),
    "SiLU": (nn.SiLU, ("inplace",)),
    "Tanh": (nn.Tanh, ()),
    "Sigmoid": (nn.Sigmoid, ()),
    "Hardtanh": (nn.Hardtanh, ("min_val", "max_val", "inplace")),
    "Identity": (nn.Identity, ()),
    "Dropout": (nn.Dropout, ("p", "inplace")),
    "Dropout2d": (nn.Dropout2d, ("p", "inplace")),
    "MaxPool2d": (nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode")),
    "AvgPool2d": (nn.AvgPool2d, ("kernel_size", "stride", "padding", "ceil_mode",
                                 "count_include_pad", "divisor_override")),
    "AdaptiveAvgPool2d": (nn.AdaptiveAvgPool2d, ("output_size",)),
    "AdaptiveMaxPool2d": (nn.AdaptiveMaxPool2d, ("output_size",)),
    "Flatten": (nn.Flatten, ("start_dim", "end_dim")),
}
FUNCTIONS = {
    "operator.add": operator.add, "operator.mul": operator.mul, "torch.add": torch.add,
    "torch.flatten": torch.flatten, "torch.relu": torch.relu, "torch.tanh": torch.tanh,
    "torch.cat": torch.cat, "torch.mean": torch.mean, "F.relu": F.relu, "F.relu6": F.relu6,
    "F.gelu": F.gelu, "F.silu": F.silu, "F.leaky_relu": F.leaky_relu, "F.dropout": F.dropout,
    "F.max_pool2d": F.max_pool2d, "F.avg_pool2d": F.avg_pool2d,
    "F.adaptive_avg_pool2d": F.adaptive_avg_pool2d,
    "F.adaptive_max_pool2d": F.adaptive_max_pool2d,
}
METHODS = {"relu", "flatten", "view", "reshape", "size", "mean", "contiguous", "add", "mul"}
_FUNCTION_NAMES = {id(f): name for name, f in FUNCTIONS.items()}
_OPS = {"placeholder", "call_module", "call_function", "call_method", "output"}


def describe(model: nn.Module) -> dict:
    """The JSON description of ``model``'s architecture; ExportError names what is unsupported."""
    try:
        traced = fx.symbolic_trace(model)
    except Exception as error:  # fx raises many kinds; all mean the same thing to the user
        raise ExportError(f"cannot trace {type(model).__name__} with torch.fx: {error}") from error
    modules, nodes = {}, []
    for node in traced.graph.nodes:
        if node.op not in _OPS:
            raise ExportError(f"graph node {node.name} ({node.op}) is not supported")
        target = node.target
        if node.op == "call_module":
            modules[target] = _describe_module(target, traced.get_submodule(target))
        elif node.op == "call_function":
            if id(target) not in _FUNCTION_NAMES:
                raise ExportError(f"function {getattr(target, '__name__', target)} in node "
                                  f"{node.name} is not in the whitelist")
            target = _FUNCTION_NAMES[id(target)]
        elif node.op == "call_method" and target not in METHODS:
            raise ExportError(f"method .{target}() in node {node.name} is not in the whitelist")
        args = () if node.op == "placeholder" else node.args
        nodes.append({"name": node.name, "op": node.op, "target": str(target),
                      "args": [_encode(a) for a in args],
                      "kwargs": {k: _encode(v) for k, v in node.kwargs.items()}})
    return {"modules": modules, "graph": nodes}


def _describe_module(name: str, module: nn.Module) -> dict:
    kind = type(module).__name__
    if kind not in MODULES or type(module) is not MODULES[kind][0]:
        raise ExportError(f"layer {name} is a {type(module).__qualname__}, which is not in the "
                          f"whitelist of layer types")
    args = {}
    for arg in MODULES[kind][1]:
        value = getattr(module, arg)
        args[arg] = (value is not None) if arg == "bias" else _encode(value)
    return {"type": kind, "args": args}


def _encode(value):
    if isinstance(value, fx.Node):
        return {"node": value.name}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ExportError(f"argument {value!r} of type {type(value).__name__} cannot be written")


def rebuild(description: dict, where: str) -> fx.GraphModule:
    """The GraphModule that ``description`` describes; ExportError (naming ``where``) if
    anything in it is malformed or outside the whitelists."""
    modules_in, nodes_in = description.get("modules"), description.get("graph")
    if not isinstance(modules_in, dict) or not isinstance(nodes_in, list):
        raise ExportError(f"{where}: no modules/graph description")
    modules = {_module_path(name, where): _build_module(name, spec, where)
               for name, spec in modules_in.items()}
    graph, made = fx.Graph(), {}
    for index, spec in enumerate(nodes_in):
        if not isinstance(spec, dict) or spec.get("op") not in _OPS:
            raise ExportError(f"{where}: graph node {index} is malformed")
        op, target = spec["op"], spec.get("target")
        args = tuple(_decode(a, made, where) for a in _as_list(spec.get("args"), where))
        kwargs = {_identifier(k, where): _decode(v, made, where)
                  for k, v in _as_dict(spec.get("kwargs"), where).items()}
        if op == "placeholder":
            node = graph.placeholder(_identifier(target, where))
        elif op == "call_module":
            if target not in modules:
                raise ExportError(f"{where}: node {index} calls undeclared layer {target!r}")
            node = graph.call_module(target, args, kwargs)
        elif op == "call_function":
            if target not in FUNCTIONS:
                raise ExportError(f"{where}: function {target!r} is not in the whitelist")
            node = graph.call_function(FUNCTIONS[target], args, kwargs)
        elif op == "call_method":
            if target not in METHODS:
                raise ExportError(f"{where}: method {target!r} is not in the whitelist")
            node = graph.call_method(target, args, kwargs)
        else:
            if len(args) != 1:
                raise ExportError(f"{where}: the output node must have one argument")
            node = graph.output(args[0])
        made[spec.get("name")] = node
    try:
        graph.lint()
        return fx.GraphModule(modules, graph, class_name="CompactNetwork").eval()
    except Exception as error:  # fx's own checks: a malformed graph, however it shows
        raise ExportError(f"{where}: the graph is malformed: {error}") from error


def _identifier(text, where: str) -> str:
    # torch.fx writes names into the Python source of forward(): anything but a plain
    # identifier could be code.
    if not isinstance(text, str) or not text.isidentifier() or keyword.iskeyword(text):
        raise ExportError(f"{where}: {text!r} is not a plain name")
    return text


def _module_path(name, where: str) -> str:
    parts = name.split(".") if isinstance(name, str) else [name]
    for part in parts:
        if not (isinstance(part, str) and part.isdigit()):
            _identifier(part, where)
    return name


def _build_module(name: str, spec, where: str) -> nn.Module:
    if not isinstance(spec, dict) or spec.get("type") not in MODULES:
        kind = spec.get("type") if isinstance(spec, dict) else spec
        raise ExportError(f"{where}: layer {name} has type {kind!r}, not in the whitelist")
    cls, allowed = MODULES[spec["type"]]
    args = _as_dict(spec.get("args"), where)
    if set(args) != set(allowed):
        raise ExportError(f"{where}: layer {name} ({spec['type']}) has arguments "
                          f"{sorted(args)}; expected {sorted(allowed)}")
    values = {k: _plain(v, where) for k, v in args.items()}
    try:
        return cls(**values)
    except Exception as error:  # a constructor's own validation, whatever it raises
        raise ExportError(f"{where}: layer {name} ({spec['type']}) cannot be built: "
                          f"{error}") from error


def _plain(value, where: str):
    if isinstance(value, dict) and set(value) == {"tuple"} and isinstance(value["tuple"], list):
        return tuple(_plain(v, where) for v in value["tuple"])
    if isinstance(value, list):
        return tuple(_plain(v, where) for v in value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ExportError(f"{where}: layer argument {value!r} is not a plain value")


def _decode(value, made: dict, where: str):
    if isinstance(value, dict):
        if set(value) == {"node"}:
            if value["node"] not in made:
                raise ExportError(f"{where}: reference to unknown node {value['node']!r}")
            return made[value["node"]]
        if set(value) == {"tuple"} and isinstance(value["tuple"], list):
            return tuple(_decode(v, made, where) for v in value["tuple"])
        raise ExportError(f"{where}: unexpected argument {value!r}")
    if isinstance(value, list):
        return [_decode(v, made, where) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ExportError(f"{where}: unexpected argument {value!r}")


def _as_list(value, where: str) -> list:
    if not isinstance(value, list):
        raise ExportError(f"{where}: node arguments must be a list")
    return value


def _as_dict(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ExportError(f"{where}: expected an object, got {type(value).__name__}")
    return value
