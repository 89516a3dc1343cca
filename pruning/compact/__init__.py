"""The physically smaller network: zero groups removed, measured, and exported.

``compact`` removes every dead unit (see pruning.compact.surgery); ``compact_report`` measures the
dense and the compact network (params, FLOPs, latency, test accuracy); ``export_compact`` writes
the compact network as safetensors + a JSON architecture (read back by ``load_compact`` without
unpickling anything), TorchScript, and ONNX when the ``onnx`` extra is installed.
"""

from pruning.compact.archive import load_compact
from pruning.compact.errors import CompactError, ExportError
from pruning.compact.export import export_compact
from pruning.compact.latency import measure_latency
from pruning.compact.report import compact_report
from pruning.compact.surgery import compact

__all__ = [
    "CompactError",
    "ExportError",
    "compact",
    "compact_report",
    "export_compact",
    "load_compact",
    "measure_latency",
]
