"""The graph JSON whitelist, checked without torch (as the API checks an upload)."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from pruneboard.graph_format import FUNCTIONS, METHODS, MODULES, check_description
from pruneboard.graph_values import MAX_DEPTH


def node(name, op, target, *args, **kwargs) -> dict:
    return {"name": name, "op": op, "target": target, "args": list(args), "kwargs": kwargs}


def ref(name: str) -> dict:
    return {"node": name}


# A tiny transformer-ish graph: conv, flatten/transpose, a positional embedding, LayerNorm,
# attention scores through matmul/softmax, x.shape, a slice, mean pooling, a classifier.
VALID = {
    "modules": {
        "embed": {"type": "Conv2d", "args": {
            "in_channels": 3, "out_channels": 8, "kernel_size": {"tuple": [4, 4]},
            "stride": {"tuple": [4, 4]}, "padding": {"tuple": [0, 0]},
            "dilation": {"tuple": [1, 1]}, "groups": 1, "bias": True, "padding_mode": "zeros"}},
        "norm": {"type": "LayerNorm", "args": {"normalized_shape": {"tuple": [8]}, "eps": 1e-5,
                                               "elementwise_affine": True, "bias": True}},
        "blocks.0.fc": {"type": "Linear", "args": {"in_features": 8, "out_features": 10,
                                                   "bias": True}},
    },
    "parameters": {"pos": {"shape": [1, 4, 8], "dtype": "float32", "buffer": False,
                           "requires_grad": True}},
    "graph": [
        node("x", "placeholder", "x"),
        node("embed", "call_module", "embed", ref("x")),
        node("flatten", "call_method", "flatten", ref("embed"), 2),
        node("transpose", "call_method", "transpose", ref("flatten"), 1, 2),
        node("pos", "get_attr", "pos"),
        node("add", "call_function", "operator.add", ref("transpose"), ref("pos")),
        node("norm", "call_module", "norm", ref("add")),
        node("shape", "call_function", "builtins.getattr", ref("norm"), "shape"),
        node("tokens", "call_function", "operator.getitem", ref("shape"), 1),
        node("kt", "call_method", "transpose", ref("norm"), -2, -1),
        node("scores", "call_function", "torch.matmul", ref("norm"), ref("kt")),
        node("scaled", "call_function", "operator.truediv", ref("scores"), ref("tokens")),
        node("attn", "call_function", "F.softmax", ref("scaled"), dim=-1),
        node("mixed", "call_function", "torch.matmul", ref("attn"), ref("norm")),
        node("head", "call_function", "operator.getitem", ref("mixed"),
             {"tuple": [{"slice": [None, None, None]}, {"ellipsis": True}]}),
        node("mean", "call_method", "mean", ref("head"), dim=1),
        node("fc", "call_module", "blocks.0.fc", ref("mean")),
        node("output", "output", "output", ref("fc")),
    ],
}


def edited(edit) -> dict:
    description = copy.deepcopy(VALID)
    edit(description)
    return description


def at(description: dict, name: str) -> dict:
    return next(n for n in description["graph"] if n["name"] == name)


def test_a_well_formed_description_has_no_problems():
    assert check_description(VALID) == []


def test_the_whitelist_holds_what_helpers_rely_on():
    assert {"Conv2d", "Linear", "BatchNorm2d", "LayerNorm", "ReLU6", "GELU", "Softmax",
            "Flatten", "AdaptiveAvgPool2d"} <= set(MODULES)
    assert {"operator.add", "operator.sub", "operator.truediv", "operator.matmul",
            "operator.getitem", "torch.cat", "torch.matmul", "torch.softmax", "torch.permute",
            "F.softmax", "F.layer_norm", "F.gelu"} <= FUNCTIONS
    assert {"transpose", "permute", "softmax", "matmul", "chunk", "split"} <= METHODS
    assert not {"builtins.eval", "builtins.exec", "os.system", "torch.load", "torch.save",
                "builtins.open", "builtins.__import__"} & FUNCTIONS


def test_checking_imports_no_torch():
    code = ("import sys, pruneboard.graph_format as g; g.check_description({}); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("edit, message", [
    (lambda d: at(d, "add").update(target="os.system"),
     "node 5 (add) calls function 'os.system', which is not in the whitelist"),
    (lambda d: at(d, "add").update(target="builtins.eval"),
     "node 5 (add) calls function 'builtins.eval', which is not in the whitelist"),
    (lambda d: at(d, "flatten").update(target="__reduce__"),
     "node 2 (flatten) calls method '__reduce__', which is not in the whitelist"),
    (lambda d: d["modules"]["norm"].update(type="os.system"),
     "layer norm has type 'os.system', which is not in the whitelist of layer types"),
    (lambda d: at(d, "shape").update(args=[ref("norm"), "__class__"]),
     "node 7 (shape): getattr may only read ['shape'] of a node"),
    (lambda d: at(d, "flatten").update(args=["text", 2]),
     "node 2 (flatten): method 'flatten' must be called on a node"),
    (lambda d: at(d, "x").update(target="x=print('hi')"),
     "node 0 (x): \"x=print('hi')\" is not a plain name"),
    (lambda d: at(d, "embed").update(kwargs={"a b": 1}),
     "node 1 (embed): keyword 'a b' is not a plain name"),
    (lambda d: at(d, "embed").update(args=[ref("fc")]),
     "node 1 (embed): reference to unknown or later node 'fc'"),
    (lambda d: at(d, "pos").update(target="elsewhere"),
     "node 4 (pos) reads 'elsewhere', which is not a declared parameter"),
    (lambda d: at(d, "fc").update(target="blocks.1.fc"),
     "node 16 (fc) calls layer 'blocks.1.fc', which is not declared"),
    (lambda d: d["modules"]["blocks.0.fc"]["args"].pop("bias"),
     "layer blocks.0.fc (Linear) has arguments ['in_features', 'out_features']; expected"),
    (lambda d: d["modules"]["blocks.0.fc"]["args"].update(bias={"eval": "1"}),
     "layer blocks.0.fc (Linear) argument bias: {'eval': '1'} is not a plain value"),
    (lambda d: d["modules"].update({"__class__.x": d["modules"]["norm"]}),
     "layer '__class__.x' is not a plain name"),
    (lambda d: d["parameters"]["pos"].update(shape=[1, -4]),
     "parameter pos: shape must be a list of sizes"),
    (lambda d: d["parameters"]["pos"].update(dtype="object"),
     "parameter pos: dtype 'object' is not one of"),
    (lambda d: d["parameters"]["pos"].update(shape=[1 << 16, 1 << 16]),
     "the parameters hold 4294967296 elements, more than 2147483648"),
    (lambda d: at(d, "scaled").update(args=[ref("scores"), float("nan")]),
     "node 11 (scaled): nan is not a finite number"),
    (lambda d: at(d, "head").update(args=[ref("mixed"), {"slice": ["a", None, None]}]),
     "node 14 (head): slice bounds must be integers, nodes or null, not 'a'"),
    (lambda d: at(d, "head").update(args=[ref("mixed"), {"code": "import os"}]),
     "node 14 (head): unexpected argument {'code': 'import os'}"),
    (lambda d: at(d, "tokens").update(args=[ref("shape"), [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]),
     "node 8 (tokens): arguments are nested too deeply"),
    (lambda d: at(d, "scores").update(name="scaled"),
     "node 11 (scaled): its name is used by an earlier node"),
    (lambda d: at(d, "add").update(op="call_code"),
     "node 5 (add) has op 'call_code', not one of"),
    (lambda d: d["graph"].pop(),
     "the graph must end with its one output node"),
    (lambda d: d.update(modules=[]),
     "modules must be an object: layer name -> {type, args}"),
])
def test_each_problem_names_the_node_or_layer_and_the_offending_name(edit, message):
    problems = check_description(edited(edit))
    assert any(p.startswith(message) for p in problems), problems


def test_malformed_values_give_problems_not_exceptions():
    for bad in (None, [], "graph", {"graph": "x"}, {"modules": {}, "graph": [1, None]},
                {"modules": {"a": {"type": ["Conv2d"]}}, "graph": [{"name": ["x"]}]},
                edited(lambda d: at(d, "pos").update(target=["pos"])),
                edited(lambda d: at(d, "shape").update(args=[ref("norm"), {"x": 1}]))):
        assert check_description(bad)
    assert MAX_DEPTH >= 8  # deep enough for real layer arguments


def test_layers_too_large_to_allocate_are_refused_before_a_rebuild():
    """A forged size would take a worker's memory while rebuilding, before any check ran."""
    graph = [{"name": "x", "op": "placeholder", "target": "x", "args": [], "kwargs": {}},
             {"name": "fc", "op": "call_module", "target": "fc", "args": [{"node": "x"}],
              "kwargs": {}},
             {"name": "output", "op": "output", "target": "output", "args": [{"node": "fc"}],
              "kwargs": {}}]

    def linear(size):
        return {"modules": {"fc": {"type": "Linear", "args": {
            "in_features": size, "out_features": size, "bias": True}}}, "graph": graph}

    assert check_description(linear(1000)) == []
    [problem] = check_description(linear(10**6))
    assert problem.startswith("the layers hold about 1000000000000 weights, more than")
