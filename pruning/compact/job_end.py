"""What a run reports after its last step: the physically smaller network, and its files.

With ``compact`` the pruned groups are removed for real (``pruning.compact``); the ``compact``
event holds the dense and compact size, measured latency and the compact network's accuracy, and
the run's summary keeps it under ``compact``. With ``export_dir`` the compact network is
written there (safetensors + JSON architecture, TorchScript, ONNX when available) and each file
is announced by an ``artifact`` event with its SHA-256. By then the trained network's BatchNorm
statistics are the re-estimated ones its eval events reported (``pruning.train`` adopts them
after the last checkpoint), so the compact network, its accuracy and every file carry them: a
downloaded model scores what the page says.

The trained network is the job's result; the small one is a bonus. So a failure here (a model
torch.fx cannot trace, an exporter that refuses an operation) does not fail the run: it ends
with a ``compact_error`` event and ``compact_error`` in the summary instead, and whatever was
exported before the failure is still announced.
"""

from __future__ import annotations

import time

from pruning.compact import compact, compact_report, export_compact
from pruning.job import Job


def finish_events(job: Job) -> list[dict]:
    if not job.config.compact:
        return []
    events: list[dict] = []
    try:
        _compact_and_export(job, events)
    except Exception as error:  # whatever compaction or an exporter raises, see above
        message = f"no small model: {type(error).__name__}: {error}"
        events.append({"type": "compact_error", "step": job.total_steps, "message": message,
                       "summary": {"compact_error": message}})
    return events


def _compact_and_export(job: Job, events: list[dict]) -> None:
    step = job.total_steps
    input_shape = tuple(job.data.input_shape)
    started = time.perf_counter()
    small = compact(job.model, job.structure, input_shape=input_shape)
    seconds = time.perf_counter() - started
    report = compact_report(job.model, job.structure, job.data, device=job.device,
                            input_shape=input_shape, small=small)
    report["compact_seconds"] = seconds
    events.append({"type": "compact", "step": step, **report, "summary": {"compact": report}})
    if job.config.export_dir:
        for artifact in export_compact(small, job.config.export_dir, input_shape=input_shape):
            events.append({"type": "artifact", "step": step, **artifact})
