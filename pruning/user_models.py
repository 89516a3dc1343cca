"""Models of one's own as files: rebuilt from the whitelisted graph JSON and safetensors weights
(or converted from ONNX first), and inspected: what a worker records before jobs may use one.

Nothing here runs code named by a file: the graph is rebuilt by ``pruning.compact.graphjson``
from whitelisted layers and functions, the weights are read by safetensors, an ONNX file is read
as protobuf and mapped onto the same layers (``pruning.onnx_import``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from pruning.compact.errors import ExportError
from pruning.compact.graphjson import rebuild
from pruning.graph import PRODUCERS
from pruning.groups import GroupingError, build_groups
from pruning.metrics import CostModel


class ModelFileError(ValueError):
    """A pushed model's files cannot be rebuilt, loaded or run; the message says which and why."""


@dataclass
class PushedModel:
    module: nn.Module  # in training mode, with the pushed weights when there are any
    graph: bytes  # the graph JSON it was rebuilt from (converted, for an ONNX file)
    weights: bytes | None
    has_weights: bool


def load_pushed(files: dict[str, bytes],
                input_shape: tuple[int, int, int] | None = None) -> PushedModel:
    """Rebuild a pushed model from its stored files: ``graph`` (+ ``weights``) or ``onnx``
    (converted for ``input_shape``, needed when the file leaves its sides open)."""
    if "onnx" in files and "graph" not in files:
        from pruning.onnx_import import OnnxImportError, convert_onnx

        try:
            description, state = convert_onnx(files["onnx"], input_shape=input_shape)
        except (OnnxImportError, ValueError) as error:
            raise ModelFileError(f"onnx: {error}") from error
        graph = json.dumps(description, sort_keys=True).encode()
        weights = save_safetensors({k: v.contiguous() for k, v in state.items()})
    else:
        graph, weights = files["graph"], files.get("weights")
    try:
        description = json.loads(graph)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"graph: not JSON: {error}") from error
    try:
        module = rebuild(description, "graph")
    except ExportError as error:
        raise ModelFileError(str(error)) from error
    if weights is not None:
        _load_weights(module, weights)
    return PushedModel(module.train(), graph, weights, weights is not None)


def _load_weights(module: nn.Module, data: bytes) -> None:
    try:
        state = load_safetensors(data)
    except SafetensorError as error:
        raise ModelFileError(f"weights: not a complete safetensors file: {error}") from error
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelFileError("weights: the tensors do not match the graph's layers"
                             + (f"; missing: {', '.join(missing[:8])}" if missing else "")
                             + (f"; not in the graph: {', '.join(unexpected[:8])}"
                                if unexpected else ""))
    wrong = [f"{name} is {tuple(state[name].shape)}, the graph's is {tuple(t.shape)}"
             for name, t in expected.items() if tuple(state[name].shape) != tuple(t.shape)]
    if wrong:
        raise ModelFileError(f"weights: {'; '.join(wrong[:5])}")
    if not all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()):
        raise ModelFileError("weights: some tensors hold NaN or infinity")
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})


def inspect(pushed: PushedModel, input_shape: tuple[int, int, int],
            num_classes: int | None = None) -> dict:
    """What a job needs to know of the model on one sample of ``input_shape``: outputs, params,
    FLOPs, the prunable groups and what stays dense, and why. ModelFileError when its forward
    pass fails or its output is not one logit vector per sample."""
    module = pushed.module
    sample = torch.zeros(2, *input_shape)
    outputs = {"values": 0}

    def count(_module, _inputs, output):
        outputs["values"] += output[0].numel() if isinstance(output, torch.Tensor) else 0

    hooks = [m.register_forward_hook(count) for m in module.modules()
             if isinstance(m, PRODUCERS)]
    module.eval()
    try:
        with torch.no_grad():
            out = module(sample)
    except Exception as error:  # the rebuilt graph met an input it cannot take
        raise ModelFileError(f"the forward pass on inputs of {_shape(input_shape)} failed: "
                             f"{type(error).__name__}: {error}") from error
    finally:
        for hook in hooks:
            hook.remove()
        module.train()
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelFileError(f"the model must return (batch, classes) logits; on inputs of "
                             f"{_shape(input_shape)} it returned {shape}")
    classes = int(out.shape[1])
    if num_classes is not None and classes != num_classes:
        raise ModelFileError(f"the model returns {classes} outputs, not the {num_classes} "
                             f"classes it was pushed with")
    try:
        structure = build_groups(module, input_shape)
    except GroupingError as error:
        raise ModelFileError(f"its channel dependencies cannot be traced: {error}") from error
    cost = CostModel(module, structure, input_shape)
    grouped = sum(p.numel() for p in structure.prunable_parameters())
    return {
        "num_classes": classes, "params": cost.dense_params, "flops": cost.dense_flops,
        "outputs": outputs["values"], "groups": len(structure.groups),
        "units": sum(g.num_units for g in structure.groups),
        "prunable_share": structure.prunable_share(),  # of the conv weights
        "prunable_param_share": grouped / cost.dense_params if cost.dense_params else 0.0,
        "dense_layers": [{"layers": layers, "reason": reason}
                         for layers, reason in structure.dense],
        "layers": [{"name": name, "type": type(m).__name__,
                    "params": sum(p.numel() for p in m.parameters(recurse=False))}
                   for name, m in module.named_modules() if name and not list(m.children())],
        "pretrained": pushed.has_weights,
    }


def _shape(shape) -> str:
    return "x".join(map(str, shape))
