"""A network's architecture as plain JSON: its torch.fx graph and the constructor arguments of its
layers, each drawn from the whitelist in ``pruneboard.graph_format``, so rebuilding it runs no
code named by the file.

``describe(model)`` gives ``{"modules": {name: {"type", "args"}}, "graph": [node, ...]}``, plus
``"parameters"`` when ``forward`` reads tensors the model owns directly (a positional embedding,
a class token, a constant buffer): their name, shape, dtype and kind, never their values, which
travel in the weights file. The format is documented in ``pruneboard.graph_format``.
``rebuild(description, where)`` checks the description with that module's
``check_description``, resolves its names to torch objects through the same whitelist (a name
outside it has no entry here) and returns an ``fx.GraphModule`` in eval mode, with freshly
initialised layers and declared tensors set to zero.
"""

from __future__ import annotations

import builtins
import math
import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from pruneboard import graph_format as fmt
from pruning.compact.errors import ExportError

_NAMESPACES = {"operator": operator, "builtins": builtins, "math": math, "torch": torch, "F": F}


def _resolve(name: str):
    space, _, attribute = name.partition(".")
    return getattr(_NAMESPACES[space], attribute)


# The whitelist's names resolved once; graph_format holds the only list of them.
MODULES: dict[str, tuple[type[nn.Module], tuple[str, ...]]] = {
    name: (getattr(nn, name), args) for name, args in fmt.MODULES.items()}
FUNCTIONS = {name: _resolve(name) for name in sorted(fmt.FUNCTIONS)}
METHODS = fmt.METHODS
_FUNCTION_NAMES = {id(f): name for name, f in FUNCTIONS.items()}
_DTYPES = {name: getattr(torch, name) for name in fmt.DTYPES}
_OPS = set(fmt.OPS)


def _reserved_names() -> frozenset[str]:
    graph = fx.Graph()
    graph.output(graph.placeholder("x"))
    return frozenset(dir(fx.GraphModule(nn.Module(), graph)))


# Attributes every rebuilt network has (forward, graph, training, ...): a layer or tensor path
# through one of them would write into the module's own machinery.
_RESERVED = _reserved_names()


def describe(model: nn.Module) -> dict:
    """The JSON description of ``model``'s architecture; ExportError names what is unsupported."""
    try:
        traced = fx.symbolic_trace(model)
    except Exception as error:  # fx raises many kinds; all mean the same thing to the user
        raise ExportError(f"cannot trace {type(model).__name__} with torch.fx: {error}") from error
    modules, tensors, nodes = {}, {}, []
    for node in traced.graph.nodes:
        if node.op not in _OPS:
            raise ExportError(f"graph node {node.name} ({node.op}) is not supported")
        target = node.target
        if node.op == "call_module":
            modules[target] = _describe_module(target, traced.get_submodule(target))
        elif node.op == "get_attr":
            tensors[target] = _describe_tensor(model, target, node.name)
        elif node.op == "call_function":
            if id(target) not in _FUNCTION_NAMES:
                raise ExportError(f"function {getattr(target, '__name__', target)} in node "
                                  f"{node.name} is not in the whitelist")
            target = _FUNCTION_NAMES[id(target)]
            if target == "builtins.getattr" and node.args[1:] not in [(a,) for a in
                                                                      fmt.ATTRIBUTES]:
                raise ExportError(f"node {node.name} reads attribute {node.args[1]!r}; only "
                                  f"{sorted(fmt.ATTRIBUTES)} is in the whitelist")
        elif node.op == "call_method" and target not in METHODS:
            raise ExportError(f"method .{target}() in node {node.name} is not in the whitelist")
        args = () if node.op in ("placeholder", "get_attr") else node.args
        nodes.append({"name": node.name, "op": node.op, "target": str(target),
                      "args": [_encode(a) for a in args],
                      "kwargs": {k: _encode(v) for k, v in node.kwargs.items()}})
    description = {"modules": modules, "graph": nodes}
    if tensors:  # absent otherwise: the description of a plain network is what it always was
        description["parameters"] = tensors
    return description


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


def _describe_tensor(model: nn.Module, target: str, node: str) -> dict:
    """A tensor ``forward`` reads directly: a parameter or a saved buffer of ``model``."""
    path, _, field = target.rpartition(".")
    try:
        owner = model.get_submodule(path)
    except AttributeError as error:
        raise ExportError(f"node {node} reads {target}, which the model does not own") from error
    if owner._parameters.get(field) is not None:
        tensor, buffer = owner._parameters[field], False
    elif owner._buffers.get(field) is not None and field not in owner._non_persistent_buffers_set:
        tensor, buffer = owner._buffers[field], True
    else:
        raise ExportError(f"node {node} reads {target}, which is neither a parameter nor a "
                          f"saved buffer: its value would not travel with the weights")
    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype not in _DTYPES:
        raise ExportError(f"tensor {target} has dtype {dtype}, not one of {list(_DTYPES)}")
    return {"shape": list(tensor.shape), "dtype": dtype, "buffer": buffer,
            "requires_grad": bool(tensor.requires_grad) and not buffer}


def _encode(value):
    if isinstance(value, fx.Node):
        return {"node": value.name}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, slice):
        return {"slice": [_encode(value.start), _encode(value.stop), _encode(value.step)]}
    if value is Ellipsis:
        return {"ellipsis": True}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ExportError(f"argument {value!r} of type {type(value).__name__} cannot be written")


def rebuild(description: dict, where: str) -> fx.GraphModule:
    """The GraphModule that ``description`` describes; ExportError (naming ``where``) if
    anything in it is malformed or outside the whitelists."""
    problems = fmt.check_description(description)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise ExportError(f"{where}: {problems[0]}{more}")
    root: dict[str, object] = {}
    for name, spec in description["modules"].items():
        root[name] = _build_module(name, spec, where)
    for name, spec in description.get("parameters", {}).items():
        root[name] = _zeros(spec)
    for name in root:
        reserved = [part for part in name.split(".") if part in _RESERVED]
        if reserved:
            raise ExportError(f"{where}: {name!r} uses the reserved name {reserved[0]!r}")
    graph, made = fx.Graph(), {}
    for spec in description["graph"]:
        op, target = spec["op"], spec["target"]
        args = tuple(_decode(a, made) for a in spec["args"])
        kwargs = {k: _decode(v, made) for k, v in spec.get("kwargs", {}).items()}
        if op == "placeholder":
            node = graph.placeholder(target)
        elif op == "get_attr":
            node = graph.get_attr(target)
        elif op == "call_module":
            node = graph.call_module(target, args, kwargs)
        elif op == "call_function":
            node = graph.call_function(FUNCTIONS[target], args, kwargs)
        elif op == "call_method":
            node = graph.call_method(target, args, kwargs)
        else:
            node = graph.output(args[0])
        made[spec["name"]] = node
    try:
        graph.lint()
        return fx.GraphModule(root, graph, class_name="CompactNetwork").eval()
    except Exception as error:  # fx's own checks: a malformed graph, however it shows
        raise ExportError(f"{where}: the graph is malformed: {error}") from error


def _build_module(name: str, spec: dict, where: str) -> nn.Module:
    cls, _ = MODULES[spec["type"]]
    values = {k: _plain(v) for k, v in spec["args"].items()}
    try:
        return cls(**values)
    except Exception as error:  # a constructor's own validation, whatever it raises
        raise ExportError(f"{where}: layer {name} ({spec['type']}) cannot be built: "
                          f"{error}") from error


def _zeros(spec: dict) -> torch.Tensor:
    """A declared tensor, zero until the weights file fills it."""
    tensor = torch.zeros(spec["shape"], dtype=_DTYPES[spec.get("dtype", "float32")])
    if spec.get("buffer", False):
        return tensor
    return nn.Parameter(tensor, requires_grad=spec.get("requires_grad", True)
                        and tensor.is_floating_point())


def _plain(value):
    if isinstance(value, dict):  # {"tuple": [...]}, as check_description allows
        return tuple(_plain(v) for v in value["tuple"])
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


def _decode(value, made: dict):
    """An argument as torch.fx takes it; check_description has vetted its form."""
    if isinstance(value, dict):
        if "node" in value:
            return made[value["node"]]
        if "tuple" in value:
            return tuple(_decode(v, made) for v in value["tuple"])
        if "slice" in value:
            return slice(*(_decode(v, made) for v in value["slice"]))
        return Ellipsis
    if isinstance(value, list):
        return [_decode(v, made) for v in value]
    return value
