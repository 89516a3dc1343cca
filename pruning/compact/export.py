"""Writing the compact network in the formats users deploy.

- ``safetensors``: ``model.safetensors`` + ``model.json`` (pruning.compact.archive), read back by
  ``load_compact`` with no pickle and no code from the files;
- ``torchscript``: ``model.pt`` from ``torch.jit.trace``, for C++ and ``torch.jit.load``. Loading it
  is torch's own TorchScript archive reader, not ``pickle`` of arbitrary Python objects, but it
  does run the TorchScript code inside, so load only files you trust;
- ``onnx``: ``model.onnx`` with a dynamic batch axis, when the ``onnx`` extra is installed (absent
  from the result otherwise).

Every format is written from a CPU copy in eval mode, with the batch axis free, and with the
BatchNorm statistics the model holds (after a run: re-estimated, see ``pruning.bn_stats``).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from pruning.compact.archive import write_archive
from pruning.compact.errors import ExportError

FORMATS = ("safetensors", "torchscript", "onnx")
TORCHSCRIPT_FILE, ONNX_FILE = "model.pt", "model.onnx"


def onnx_available() -> bool:
    return importlib.util.find_spec("onnx") is not None


def export_compact(model: nn.Module, directory: str | Path, *, input_shape: tuple[int, ...],
                   formats: tuple[str, ...] = FORMATS) -> list[dict]:
    """Write ``model`` into ``directory`` in each of ``formats``; one
    ``{"format", "path", "sha256", "bytes"}`` per file written (``path`` relative to
    ``directory``). The safetensors format gives two entries: ``safetensors`` for the weights and
    ``json`` for the architecture, both needed by ``load_compact``."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ExportError(f"unknown export format(s) {unknown}; choose from {list(FORMATS)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).cpu().eval()
    dtype = next(model.parameters()).dtype
    example = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    entries = []
    if "safetensors" in formats:
        entries += write_archive(model, directory, tuple(input_shape))
    if "torchscript" in formats:
        entries.append(_write_torchscript(model, example, directory / TORCHSCRIPT_FILE))
    if "onnx" in formats and onnx_available():
        entries.append(_write_onnx(model, example, directory / ONNX_FILE))
    return entries


def _write_torchscript(model: nn.Module, example: torch.Tensor, path: Path) -> dict:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit is in maintenance mode and says so on every call
        try:
            traced = torch.jit.trace(model, example)
        except Exception as error:  # tracing failures come in many types
            raise ExportError(f"cannot trace {type(model).__name__} for TorchScript: "
                              f"{error}") from error
        _atomic(path, lambda tmp: torch.jit.save(traced, tmp))
    return file_entry("torchscript", path)


def _write_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> dict:
    def export(tmp: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter warns that it is legacy
            # The TorchScript-based exporter takes well under a second where the dynamo one
            # takes several, and needs no external-data file for these sizes.
            torch.onnx.export(model, (example,), str(tmp), dynamo=False, input_names=["input"],
                              output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})

    try:
        _atomic(path, export)
    except ExportError:
        raise
    except Exception as error:  # exporter failures come in many types
        raise ExportError(f"cannot export {type(model).__name__} to ONNX: {error}") from error
    return file_entry("onnx", path)


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def file_entry(kind: str, path: Path) -> dict:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return {"format": kind, "path": path.name, "sha256": digest.hexdigest(), "bytes": size}
