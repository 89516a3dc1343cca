"""What an uploaded model is checked for before it is stored: torch-free, and nothing in it runs.

The graph JSON must stay inside the whitelist (``pruneboard.graph_format``), the weights must be
a complete safetensors file (the safetensors library reads only its header here), an ONNX file
must parse and use only operators the converter knows (``pruneboard.onnx_format``), and each
file's SHA-256 must match the one the client sent, if it sent one. A worker then rebuilds and
inspects the version (worker.inspection); only then may jobs use it.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass

from pruneboard.spec.catalog import DATASETS, MODELS

Problems = list[tuple[str, str]]


@dataclass(frozen=True)
class Upload:
    """One file of an upload: its form field (``graph``, ``weights`` or ``onnx``) and bytes."""

    kind: str
    data: bytes
    claimed_sha256: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def check_name(name: str) -> Problems:
    if name in MODELS or name in DATASETS:
        return [("name", f"{name!r} is the name of a built-in model or dataset; choose another")]
    return []


def check_files(files: list[Upload], input_shape: tuple[int, int, int] | None
                ) -> tuple[Problems, tuple[int, int, int] | None]:
    """Problems with the files, and the input shape (declared, or read from the ONNX file)."""
    kinds = {f.kind for f in files}
    if "onnx" in kinds and kinds & {"graph", "weights"}:
        return [("onnx", "send either an ONNX file or a graph (with optional weights), not "
                         "both")], input_shape
    if not kinds & {"onnx", "graph"}:
        return [("graph", "send the model: a graph JSON file (pruneboard model push makes "
                          "one) or an onnx file")], input_shape
    problems: Problems = []
    for upload in files:
        if upload.claimed_sha256 is not None and upload.claimed_sha256.lower() != upload.sha256:
            problems.append((f"{upload.kind}_sha256",
                             f"the {upload.kind} file's SHA-256 is {upload.sha256}, not the "
                             f"{upload.claimed_sha256} sent with it: the file changed on the "
                             f"way or was tampered with"))
        elif upload.kind == "graph":
            problems += _check_graph(upload.data)
        elif upload.kind == "weights":
            problems += _check_weights(upload.data)
        else:
            found, problems_onnx = _check_onnx(upload.data)
            problems += problems_onnx
            if input_shape is None:
                input_shape = found
    if not problems and input_shape is None:
        problems.append(("input_shape", "give the model's input shape as C,H,W (the ONNX file "
                                        "does not fix it)" if "onnx" in kinds else
                         "give the model's input shape as C,H,W"))
    return problems, input_shape


def _check_graph(data: bytes) -> Problems:
    from pruneboard.graph_format import check_description

    try:
        description = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return [("graph", f"the graph file is not JSON: {error}")]
    if not isinstance(description, dict):
        return [("graph", "the graph file must hold a JSON object with modules and graph")]
    return [("graph", problem) for problem in check_description(description)[:20]]


def _check_weights(data: bytes) -> Problems:
    from safetensors import SafetensorError, safe_open

    # safe_open validates the header against the file: a truncated or padded file, offsets
    # that overlap or leave gaps, an unknown dtype. The tensors themselves are not read.
    with tempfile.NamedTemporaryFile(suffix=".safetensors") as file:
        file.write(data)
        file.flush()
        try:
            with safe_open(file.name, framework="numpy") as weights:
                if not list(weights.keys()):
                    return [("weights", "the weights file holds no tensors")]
        except (SafetensorError, OSError, ValueError) as error:
            return [("weights", f"not a complete safetensors file: {error}")]
    return []


def _check_onnx(data: bytes) -> tuple[tuple[int, int, int] | None, Problems]:
    from pruneboard.onnx_format import OnnxError, check_onnx

    try:
        facts = check_onnx(data)
    except OnnxError as error:
        return None, [("onnx", str(error))]
    shape = tuple(facts.input_shape) if facts.input_shape is not None else None
    return shape, []
