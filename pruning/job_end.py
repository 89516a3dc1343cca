"""What a run reports after its last step: the physically smaller network, and its files.

With ``compact`` the pruned groups are removed for real (``pruning.compact``); the ``compact``
event holds the dense and compact size, measured latency and the compact network's accuracy, and
the run's summary keeps it under ``compact``. With ``export_dir`` the compact network is
written there (safetensors + JSON architecture, TorchScript, ONNX when available) and each file
is announced by an ``artifact`` event with its SHA-256.
"""

from __future__ import annotations

import time

from pruning.compact import compact, compact_report, export_compact
from pruning.setup import Job


def finish_events(job: Job, last_eval: dict) -> list[dict]:
    config = job.config
    if not config.compact:
        return []
    step = job.total_steps
    input_shape = tuple(job.data.input_shape)
    started = time.perf_counter()
    small = compact(job.model, job.structure, input_shape=input_shape)
    seconds = time.perf_counter() - started
    report = compact_report(job.model, job.structure, job.data, device=job.device,
                            input_shape=input_shape, small=small)
    report["compact_seconds"] = seconds
    events = [{"type": "compact", "step": step, **report, "summary": {"compact": report}}]
    if config.export_dir:
        for artifact in export_compact(small, config.export_dir, input_shape=input_shape):
            events.append({"type": "artifact", "step": step, **artifact})
    return events
