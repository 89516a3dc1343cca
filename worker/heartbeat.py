"""Liveness, cancellation and recovery, on one daemon thread per worker process.

Every ``heartbeat_interval_s`` the thread
- upserts this worker's ``workers`` row (what the API's worker list shows), with the dataset
  folders it can read under its data roots (``datasets``: what a job's ``data_dir`` is checked
  against). The roots are rescanned at start and then at most every ``DATASET_SCAN_INTERVAL_S``:
  a scan only stats unchanged folders, but a beat need not do even that;
- touches ``heartbeat_at`` of the job it runs and reads that job's ``cancel_requested``: the
  training loop's ``should_stop`` then only reads a flag, never the database;
- touches ``heartbeat_at`` of the loss-valley analysis it runs, if any;
- reaps: jobs still 'running' whose heartbeat is older than ``heartbeat_timeout_s`` lost their
  worker (killed, machine gone); they are requeued from their last checkpoint, or failed once
  they used ``max_attempts``, and their task is re-sent after the commit (worker.jobs). Lost
  analyses are failed (they are cheap to start again).

Every worker reaps, so recovery needs no scheduler of its own: any live worker notices a dead one.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.dialects import postgresql, sqlite

from backend.db import session_scope
from backend.models import Analysis, Job, Worker, utcnow
from backend.settings import Settings
from pruneboard.status import JobStatus
from worker.jobs import reap_lost_analyses, reap_lost_jobs

log = logging.getLogger(__name__)

DEVICE_ENV = "PRUNEBOARD_WORKER_DEVICE"
# A folder added under a data root shows up in the worker list within this long.
DATASET_SCAN_INTERVAL_S = 30.0


def worker_device() -> str:
    """Where this worker's jobs train: ``cpu`` or ``cuda`` (set by ``pruneboard worker``;
    without it, cuda when a GPU is visible)."""
    device = os.environ.get(DEVICE_ENV, "").strip().lower()
    if device in ("cpu", "cuda"):
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _device_label(device: str) -> str:
    # Name the physical GPU: inside the process it is always cuda:0.
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    return f"cuda:{visible}" if device == "cuda" and visible and "," not in visible else device


def _gpu_info(device: str) -> tuple[str | None, int | None]:
    if device != "cuda":
        return None, None
    import torch

    if not torch.cuda.is_available():
        return None, None
    props = torch.cuda.get_device_properties(0)
    return props.name, props.total_memory // 2**20


class Heartbeat:
    def __init__(self, settings: Settings, *, resend: Callable[[int], None],
                 device: str | None = None):
        self.settings = settings
        self.device = device or worker_device()
        label = _device_label(self.device)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{label}"
        self._label = label
        self._url = settings.resolved_database_url
        self._resend = resend
        self._gpu_name, self._gpu_memory_mb = _gpu_info(self.device)
        self._job: tuple[int, int] | None = None  # (job id, attempt)
        self._analysis: int | None = None
        self._cancel = threading.Event()
        self._lost = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._datasets: list[dict] = []
        self._scanned_at: float | None = None  # time.monotonic() of the last scan

    def start(self) -> None:
        """Register, reap once (a worker starting after a crash recovers its jobs at once), then
        beat in the background. Calling it again is a no-op."""
        if self._thread is not None:
            return
        self._safely(self.beat)
        self._safely(self.reap)
        self._thread = threading.Thread(target=self._run, daemon=True, name="heartbeat")
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        # A cleanly stopped worker leaves the list at once; a killed one when it is reaped.
        self._safely(self._unregister)

    def set_job(self, job_id: int, attempt: int) -> None:
        self._cancel.clear()
        self._lost.clear()
        self._job = (job_id, attempt)

    def clear_job(self) -> None:
        self._job = None

    def set_analysis(self, analysis_id: int) -> None:
        self._analysis = analysis_id

    def clear_analysis(self) -> None:
        self._analysis = None

    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def lost(self) -> bool:
        """The job was taken from this worker (presumed dead and requeued)."""
        return self._lost.is_set()

    def should_stop(self) -> bool:
        return self._cancel.is_set() or self._lost.is_set()

    def datasets(self) -> list[dict]:
        """The dataset folders under this worker's data roots, rescanned when the last scan is
        ``DATASET_SCAN_INTERVAL_S`` old (a bad folder is skipped by the scan, never raised)."""
        moment = time.monotonic()
        if self._scanned_at is None or moment - self._scanned_at >= DATASET_SCAN_INTERVAL_S:
            # Imported here: the engine's data package brings torch, which the rest of the
            # heartbeat does not need.
            from pruning.data import scan_data_roots

            self._datasets = scan_data_roots(self.settings.resolved_data_roots)
            self._scanned_at = moment
        return self._datasets

    def beat(self) -> None:
        now = utcnow()
        job, analysis = self._job, self._analysis
        datasets = self.datasets()
        with session_scope(self._url) as session:
            insert = (postgresql.insert if session.bind.dialect.name == "postgresql"
                      else sqlite.insert)
            values = {"heartbeat_at": now, "current_job_id": job[0] if job else None,
                      "datasets": datasets}
            session.execute(
                insert(Worker)
                .values(id=self.worker_id, host=socket.gethostname(), device=self._label,
                        gpu_name=self._gpu_name, gpu_memory_mb=self._gpu_memory_mb,
                        started_at=now, **values)
                .on_conflict_do_update(index_elements=["id"], set_=values))
            if analysis is not None:
                session.execute(update(Analysis).where(Analysis.id == analysis,
                                                       Analysis.status == JobStatus.RUNNING)
                                .values(heartbeat_at=now)
                                .execution_options(synchronize_session=False))
            if job is None:
                return
            cancel = session.execute(
                update(Job)
                .where(Job.id == job[0], Job.status == JobStatus.RUNNING, Job.attempt == job[1])
                .values(heartbeat_at=now)
                .returning(Job.cancel_requested)
                .execution_options(synchronize_session=False)
            ).scalar()
        if job != self._job:
            return  # the job ended while we were beating; its flags no longer matter
        if cancel is None:
            log.warning("job %s attempt %s is no longer ours; stopping it", *job)
            self._lost.set()
        elif cancel:
            self._cancel.set()

    def reap(self) -> list[int]:
        settings = self.settings
        with session_scope(self._url) as session:
            reaped = reap_lost_jobs(session, timeout_s=settings.heartbeat_timeout_s,
                                    max_attempts=settings.max_attempts)
            reap_lost_analyses(session, timeout_s=settings.heartbeat_timeout_s)
            cutoff = utcnow() - timedelta(seconds=settings.heartbeat_timeout_s)
            session.execute(delete(Worker).where(Worker.heartbeat_at < cutoff))
        for job in reaped:
            log.warning("job %s: worker %s lost during attempt %s -> %s", job.job_id,
                        job.lost_worker, job.attempt, job.status)
        requeued = [job.job_id for job in reaped if job.status == JobStatus.QUEUED]
        # Only after the commit: a worker taking the message must find the job 'queued'.
        for job_id in requeued:
            self._resend(job_id)
        return requeued

    def _unregister(self) -> None:
        with session_scope(self._url) as session:
            session.execute(delete(Worker).where(Worker.id == self.worker_id))

    def _run(self) -> None:
        interval = self.settings.heartbeat_interval_s
        while not self._stopping.wait(interval):
            self._safely(self.beat)
            self._safely(self.reap)

    def _safely(self, action: Callable[[], object]) -> None:
        # A database hiccup must not kill the thread; the next tick tries again, and a job whose
        # heartbeat stays stale long enough is recovered by the reapers. The traceback is logged
        # once per outage, not twice a second.
        try:
            action()
        except Exception as error:
            log.warning("heartbeat %s of %s failed: %s", action.__name__, self.worker_id,
                        str(error).splitlines()[0] if str(error) else type(error).__name__,
                        exc_info=not self._failing)
            self._failing = True
        else:
            self._failing = False
