"""The local half of `pruneboard model push FILE.py:FACTORY`: import the user's file, build the
model, describe it as Pruneboard's whitelisted graph JSON, and prove, before anything is
uploaded, that the JSON rebuilds the same network.

The user's file runs here, on their own machine, as their own code; the service only ever sees
the JSON (rebuilt from whitelisted layers and functions, no unpickling) and safetensors weights.
The weights sent are the state dict of the model rebuilt from the JSON, so their keys are the
ones the server's rebuild expects.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cli.errors import UsageError

# Both networks run in float64 on the same input: only the order of floating-point operations
# may differ between them, so anything above rounding noise is a real difference.
RELATIVE_TOLERANCE = 1e-6
CHECK_BATCH = 2


@dataclass(frozen=True)
class TracedModel:
    graph: bytes  # the graph JSON
    weights: bytes | None  # safetensors of the rebuilt module's state dict, when sent
    layers: int
    params: int
    outputs: int  # logits per sample on the check input
    difference: float  # largest |rebuilt - original| on the check input


def split_source(text: str) -> tuple[Path, str]:
    """FILE.py:FACTORY -> (path, attribute path); the last colon splits, so C:\\x.py:f works."""
    path, colon, factory = text.rpartition(":")
    if not colon or not path.endswith(".py") or not factory:
        raise UsageError(f"model source {text!r}: give FILE.py:FACTORY (a function or class in "
                         f"the file that returns the nn.Module) or an .onnx file")
    if not all(part.isidentifier() for part in factory.split(".")):
        raise UsageError(f"model source {text!r}: {factory!r} is not a Python name")
    return Path(path), factory


def build_model(path: Path, factory: str, kwargs: dict) -> nn.Module:
    """``FACTORY(**kwargs)`` from the file at ``path``, imported as a module of its own."""
    if not path.is_file():
        raise UsageError(f"model file {path} does not exist")
    path = path.resolve()
    name = "pruneboard_user_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    # Its own folder first, so the file may import its neighbours as it does when run itself.
    sys.path.insert(0, str(path.parent))
    try:
        try:
            spec.loader.exec_module(module)
        except Exception as error:  # the user's own code: whatever it raises, say where
            raise UsageError(f"importing {path.name} failed{_where(error, path)}: "
                             f"{type(error).__name__}: {error}") from None
        target = module
        for part in factory.split("."):
            if not hasattr(target, part):
                raise UsageError(f"{path.name} has no {factory!r}")
            target = getattr(target, part)
        if not callable(target):
            raise UsageError(f"{path.name}:{factory} is not a function or class")
        try:
            model = target(**kwargs)
        except Exception as error:
            raise UsageError(f"{path.name}:{factory}() failed{_where(error, path)}: "
                             f"{type(error).__name__}: {error}") from None
    finally:
        sys.path.remove(str(path.parent))
    if not isinstance(model, nn.Module):
        raise UsageError(f"{path.name}:{factory}() returned a {type(model).__name__}, not a "
                         f"torch.nn.Module")
    return model


def load_weights(model: nn.Module, path: Path) -> None:
    """The --weights file into ``model``, strictly: every key, every shape."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise UsageError(f"--weights: {path} does not exist")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise UsageError(f"--weights: {path} is not a safetensors file: {error}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise UsageError(f"--weights: {path.name} does not match the model"
                         + (f"; missing: {_names(missing)}" if missing else "")
                         + (f"; unexpected: {_names(unexpected)}" if unexpected else ""))
    wrong = [f"{key} is {tuple(state[key].shape)}, the model's is {tuple(t.shape)}"
             for key, t in expected.items() if state[key].shape != t.shape]
    if wrong:
        raise UsageError(f"--weights: {path.name} does not match the model: "
                         f"{'; '.join(wrong[:5])}")
    model.load_state_dict(state, strict=True)


def trace(model: nn.Module, input_shape: tuple[int, int, int], *, with_weights: bool,
          num_classes: int | None = None) -> TracedModel:
    """The graph JSON of ``model`` (and its weights when ``with_weights``), after checking that
    the JSON rebuilds a network with the same state-dict keys and the same outputs."""
    from safetensors.torch import save

    from pruning.compact.errors import ExportError
    from pruning.compact.graphjson import describe, rebuild

    try:
        description = describe(model)
    except ExportError as error:
        raise UsageError(f"the model cannot be pushed: {error}. Pruneboard rebuilds models "
                         f"from a whitelist of layers and functions only (see "
                         f"pruning/compact/graphjson.py); write that part with them") from None
    graph = json.dumps(description).encode()
    try:  # from the bytes, exactly as the server will read them
        rebuilt = rebuild(json.loads(graph), "graph")
    except ExportError as error:
        raise UsageError(f"the graph JSON does not rebuild: {error}") from None
    original, copied = model.state_dict(), rebuilt.state_dict()
    missing, extra = sorted(set(original) - set(copied)), sorted(set(copied) - set(original))
    if missing or extra:
        raise UsageError("the traced graph does not hold the model's tensors"
                         + (f"; not used by forward(): {_names(missing)}" if missing else "")
                         + (f"; not in the model: {_names(extra)}" if extra else "")
                         + " (a parameter used directly in forward() or a layer it never calls)")
    rebuilt.load_state_dict({k: v.detach().clone() for k, v in original.items()}, strict=True)
    state = {k: v.detach().clone().contiguous() for k, v in rebuilt.state_dict().items()}
    weights = save(state) if with_weights else None

    sample = torch.randn(CHECK_BATCH, *input_shape, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(0))
    shape = "x".join(map(str, (CHECK_BATCH, *input_shape)))
    model.double().eval()
    rebuilt.double().eval()
    with torch.no_grad():
        try:
            expected = model(sample)
        except Exception as error:
            raise UsageError(f"the model fails on a random input of {shape} (is --input-shape "
                             f"right?): {type(error).__name__}: {error}") from None
        if not isinstance(expected, torch.Tensor) or expected.dim() != 2 \
                or expected.shape[0] != CHECK_BATCH:
            got = tuple(expected.shape) if isinstance(expected, torch.Tensor) \
                else type(expected).__name__
            raise UsageError(f"the model must return (batch, classes) logits; on an input of "
                             f"{shape} it returned {got}")
        actual = rebuilt(sample)
    if num_classes is not None and expected.shape[1] != num_classes:
        raise UsageError(f"--num-classes is {num_classes} but the model returns "
                         f"{expected.shape[1]} outputs")
    difference = float((actual - expected).abs().max())
    scale = max(1.0, float(expected.abs().max()))
    if not difference <= RELATIVE_TOLERANCE * scale:  # also catches NaN
        raise UsageError(f"the graph rebuilt from the JSON computes something else than the "
                         f"model (largest output difference {difference:.3g}): torch.fx "
                         f"records one path through forward(), so Python branches on the "
                         f"input or on state it cannot see are lost")
    layers = sum(1 for node in rebuilt.graph.nodes if node.op == "call_module")
    return TracedModel(graph=graph, weights=weights, layers=layers,
                       params=sum(p.numel() for p in rebuilt.parameters()),
                       outputs=int(expected.shape[1]), difference=difference)


def _where(error: BaseException, path: Path) -> str:
    """' (FILE line N)': the deepest frame of the user's file in the error's traceback."""
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
             if Path(frame.filename).resolve() == path]
    if isinstance(error, SyntaxError) and error.lineno:
        lines.append(error.lineno)
    return f" ({path.name} line {lines[-1]})" if lines else ""


def _names(keys: list[str]) -> str:
    more = f" and {len(keys) - 8} more" if len(keys) > 8 else ""
    return ", ".join(keys[:8]) + more
