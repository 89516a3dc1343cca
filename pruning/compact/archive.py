"""The compact network as two plain files that load without unpickling anything.

``model.safetensors`` holds the weights and buffers (safetensors: a JSON header and raw tensor
bytes). ``model.json`` describes the architecture (pruning.compact.graphjson) and records the
weights file's size and SHA-256, plus its own SHA-256 over its canonical form::

    {"format": "pruneboard-compact", "version": 1, "input_shape": [3, 32, 32],
     "dtype": "float32", "architecture": {"modules": {...}, "graph": [...]},
     "weights": {"file": "model.safetensors", "bytes": ..., "sha256": "..."},
     "json_sha256": "..."}

(The architecture also has ``parameters`` when the network reads tensors it owns directly; files
written without them load as before.)

``load_compact`` refuses a file that differs by even one byte from what was written: the JSON
must be byte-for-byte its canonical form and match its own digest, the weights must match theirs.
The digests detect corruption and accidental edits, not a forger who rewrites both files; what
keeps a forged file harmless is that loading runs no code it names (whitelisted layer types and
functions only, safetensors for the tensors).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from pruning.compact.errors import ExportError
from pruning.compact.graphjson import describe, rebuild

FORMAT, VERSION = "pruneboard-compact", 1
WEIGHTS_FILE, ARCHITECTURE_FILE = "model.safetensors", "model.json"
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
           "float64": torch.float64}


def write_archive(model: nn.Module, directory: Path, input_shape: tuple[int, ...]) -> list[dict]:
    """Write model.safetensors and model.json into ``directory``; one entry per file."""
    architecture = describe(model)
    state = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    dtypes = {str(t.dtype).removeprefix("torch.") for t in state.values() if t.is_floating_point()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in _DTYPES:
        raise ExportError(f"the weights must share one floating dtype of {sorted(_DTYPES)}; "
                          f"got {sorted(dtypes)}")
    weights = save_safetensors(state)
    document = {
        "format": FORMAT, "version": VERSION, "input_shape": [int(d) for d in input_shape],
        "dtype": dtypes.pop(), "architecture": architecture,
        "weights": {"file": WEIGHTS_FILE, "bytes": len(weights),
                    "sha256": hashlib.sha256(weights).hexdigest()},
    }
    document["json_sha256"] = _sha256_of(document)
    text = _canonical(document)
    (directory / WEIGHTS_FILE).write_bytes(weights)
    (directory / ARCHITECTURE_FILE).write_bytes(text)
    return [_entry("safetensors", directory / WEIGHTS_FILE, weights),
            _entry("json", directory / ARCHITECTURE_FILE, text)]


def load_compact(path: str | Path) -> nn.Module:
    """The network written by ``export_compact`` into ``path`` (its directory or its model.json),
    in eval mode. Raises ExportError naming the file and the fault for anything missing,
    truncated, modified or outside the whitelists. Nothing is unpickled."""
    path = Path(path)
    json_path = path / ARCHITECTURE_FILE if path.is_dir() else path
    document = _read_document(json_path)
    weights_path = json_path.parent / document["weights"]["file"]
    tensors = _read_weights(weights_path, document["weights"])
    model = rebuild(document["architecture"], str(json_path))
    dtype = _DTYPES[document["dtype"]]
    expected = model.state_dict()
    if set(tensors) != set(expected):
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        raise ExportError(f"{weights_path}: tensors do not match the architecture "
                          f"(missing {missing[:3]}, unexpected {extra[:3]})")
    for name, want in expected.items():  # the architecture's order: the same report every time
        tensor = tensors[name]
        want_dtype = dtype if want.is_floating_point() else want.dtype
        if tensor.shape != want.shape or tensor.dtype != want_dtype:
            raise ExportError(f"{weights_path}: tensor {name} is {tuple(tensor.shape)} "
                              f"{tensor.dtype}; the architecture needs {tuple(want.shape)} "
                              f"{want_dtype}")
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.eval()


def _read_document(json_path: Path) -> dict:
    if not json_path.is_file():
        raise ExportError(f"{json_path}: no such file (expected {ARCHITECTURE_FILE} from "
                          f"export_compact)")
    raw = json_path.read_bytes()
    try:
        document = json.loads(raw.decode("ascii"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise ExportError(f"{json_path}: not valid JSON (truncated or modified?): "
                          f"{error}") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ExportError(f"{json_path}: not a {FORMAT} description")
    if document.get("version") != VERSION:
        raise ExportError(f"{json_path}: version {document.get('version')!r} is not supported "
                          f"(this reader knows {VERSION})")
    claimed = document.pop("json_sha256", None)
    if claimed != _sha256_of(document):
        raise ExportError(f"{json_path}: content does not match its json_sha256 (modified?)")
    document["json_sha256"] = claimed
    if raw != _canonical(document):
        raise ExportError(f"{json_path}: not the file export_compact wrote (modified layout)")
    weights = document.get("weights")
    if (not isinstance(weights, dict) or weights.get("file") != WEIGHTS_FILE
            or document.get("dtype") not in _DTYPES):
        raise ExportError(f"{json_path}: malformed weights or dtype entry")
    return document


def _read_weights(path: Path, entry: dict) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ExportError(f"{path}: no such file (model.json names it as the weights)")
    data = path.read_bytes()
    if len(data) != entry.get("bytes"):
        raise ExportError(f"{path}: {len(data)} bytes, model.json says {entry.get('bytes')} "
                          f"(truncated or replaced)")
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise ExportError(f"{path}: SHA-256 does not match model.json (modified or corrupt)")
    try:
        return load_safetensors(data)
    except Exception as error:  # safetensors reports a bad header in its own error types
        raise ExportError(f"{path}: not a readable safetensors file: {error}") from error


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def _canonical(document: dict) -> bytes:
    return (json.dumps(document, sort_keys=True, indent=1, ensure_ascii=True, allow_nan=False)
            + "\n").encode("ascii")


def _sha256_of(document: dict) -> str:
    return hashlib.sha256(_canonical(document)).hexdigest()


def _entry(kind: str, path: Path, data: bytes) -> dict:
    return {"format": kind, "path": path.name, "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data)}
