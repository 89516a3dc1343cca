"""Liveness, cancellation and recovery, on one daemon thread per worker process.

Every ``heartbeat_interval_s`` the thread
- upserts this worker's ``workers`` row (what the API's worker list shows), with the dataset
  folders it can read under its data roots (``datasets``: what a job's ``data_dir`` is checked
  against). The roots are rescanned at start and then at most every ``DATASET_SCAN_INTERVAL_S``:
  a scan only stats unchanged folders, but a beat need not do even that. With them go the names
  its installed plugins register (``plugins``: ``{"models": [...], "datasets": [...]}``, what a
  job naming a plugin's model or dataset is checked against), re-read as often;
- touches ``heartbeat_at`` of the job it runs and reads that job's ``cancel_requested``: the
  training loop's ``should_stop`` then only reads a flag, never the database;
- touches ``heartbeat_at`` of the loss-valley analysis it runs, if any;
- reaps: jobs still 'running' whose heartbeat is older than ``heartbeat_timeout_s`` lost their
  worker (killed, machine gone); they are requeued from their last checkpoint, or failed once
  their worker losses reach ``max_attempts``, and their task is sent after the commit
  (worker.jobs). Lost analyses are failed (they are cheap to start again). A reaper judges
  heartbeats only once this process has reached the database without a break (nor a stall of
  its own) for ``heartbeat_timeout_s`` (worker.outage): after an outage every live worker has
  beaten again;
- every ``dispatch_interval_s``, sends the outbox's pending (or evidently lost) run messages
  (backend.queue.dispatch_due), as the API does: a fleet without an API up still recovers.

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
from backend.queue import Sender, dispatch_due, dispatch_now
from backend.services.dispatch import Message
from backend.settings import Settings
from pruneboard.status import JobStatus
from worker.jobs import reap_lost_analyses, reap_lost_inspections, reap_lost_jobs
from worker.outage import Connectivity, first_line, is_connection_error

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
    def __init__(self, settings: Settings, *, send: Sender | None = None,
                 device: str | None = None, link: Connectivity | None = None):
        self.settings = settings
        self.device = device or worker_device()
        label = _device_label(self.device)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{label}"
        # This process's contact with the database, shared with its runs' writers.
        self.link = link or Connectivity()
        self._label = label
        self._url = settings.resolved_database_url
        self._send = send  # None: backend.queue's producer
        self._dispatched_at: float | None = None  # time.monotonic() of the last dispatch
        self._judging = False
        self._gpu_name, self._gpu_memory_mb = _gpu_info(self.device)
        self._job: tuple[int, int] | None = None  # (job id, attempt)
        self._analysis: int | None = None
        self._cancel = threading.Event()
        self._lost = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing: set[str] = set()  # the actions whose last try failed
        self._datasets: list[dict] = []
        self._scanned_at: float | None = None  # time.monotonic() of the last scan
        self._plugins: dict[str, list[str]] = {"models": [], "datasets": []}
        self._plugins_at: float | None = None  # time.monotonic() of the last plugin discovery

    def start(self) -> None:
        """Register, reap once (a worker starting after a crash recovers its jobs at once), then
        beat in the background. Calling it again is a no-op."""
        if self._thread is not None:
            return
        self._safely(self.beat)
        self._safely(self.reap)
        self._safely(self.dispatch)
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

    def plugins(self) -> dict[str, list[str]]:
        """The model and dataset names of this worker's plugins, re-read as often as the data
        roots (a broken plugin is skipped with a warning, never raised)."""
        moment = time.monotonic()
        if self._plugins_at is None or moment - self._plugins_at >= DATASET_SCAN_INTERVAL_S:
            from pruning.plugins import plugin_names

            self._plugins = plugin_names()
            self._plugins_at = moment
        return self._plugins

    def beat(self) -> None:
        now = utcnow()
        job, analysis = self._job, self._analysis
        datasets = self.datasets()
        plugins = self.plugins()
        with session_scope(self._url) as session:
            insert = (postgresql.insert if session.bind.dialect.name == "postgresql"
                      else sqlite.insert)
            values = {"heartbeat_at": now, "current_job_id": job[0] if job else None,
                      "datasets": datasets, "plugins": plugins}
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
        """Requeue (or fail) the jobs of workers that stopped beating; returns the requeued ids.
        Nothing is judged until this process has reached the database for a whole
        ``heartbeat_timeout_s`` without a break: right after an outage every heartbeat is old,
        because nobody could write one."""
        settings = self.settings
        judging = self.link.connected_for() >= settings.heartbeat_timeout_s
        if judging != self._judging:
            self._judging = judging
            if not judging:
                log.info("not judging heartbeats until the database has been reachable for "
                         "%.0f s", settings.heartbeat_timeout_s)
        if not judging:
            return []
        with session_scope(self._url) as session:
            reaped = reap_lost_jobs(session, timeout_s=settings.heartbeat_timeout_s,
                                    max_losses=settings.max_attempts)
            reap_lost_analyses(session, timeout_s=settings.heartbeat_timeout_s)
            reap_lost_inspections(session, timeout_s=settings.heartbeat_timeout_s)
            cutoff = utcnow() - timedelta(seconds=settings.heartbeat_timeout_s)
            session.execute(delete(Worker).where(Worker.heartbeat_at < cutoff))
        for job in reaped:
            log.warning("job %s: worker %s lost during attempt %s (loss %s of %s) -> %s",
                        job.job_id, job.lost_worker, job.attempt, job.worker_losses,
                        settings.max_attempts, job.status)
        requeued = [job.job_id for job in reaped if job.status == JobStatus.QUEUED]
        # Only after the commit: a worker taking the message must find the job 'queued'.
        dispatch_now(settings, [Message("job", job_id) for job_id in requeued], send=self._send)
        return requeued

    def dispatch(self) -> int:
        """Send the outbox's due messages, at most every ``dispatch_interval_s``."""
        interval = self.settings.dispatch_interval_s
        moment = time.monotonic()
        if interval <= 0 or (self._dispatched_at is not None
                             and moment - self._dispatched_at < interval):
            return 0
        self._dispatched_at = moment
        return dispatch_due(self.settings, send=self._send)

    def _unregister(self) -> None:
        with session_scope(self._url) as session:
            session.execute(delete(Worker).where(Worker.id == self.worker_id))

    def _run(self) -> None:
        interval = self.settings.heartbeat_interval_s
        last = time.monotonic()
        while not self._stopping.wait(interval):
            started = time.monotonic()
            if started - last > self.settings.heartbeat_timeout_s / 2:
                # A starved or paused process looks dead to the others' reapers, and, if the
                # whole host stalled, the others look dead to it: it judges no heartbeat until
                # it has been running smoothly for a timeout again.
                log.warning("heartbeat of %s late: %.1f s since the last tick", self.worker_id,
                            started - last)
                self.link.interrupted()
            last = started
            self._safely(self.beat)
            self._safely(self.reap)
            self._safely(self.dispatch)
            took = time.monotonic() - started
            if took > self.settings.heartbeat_timeout_s / 4:
                log.warning("heartbeat tick of %s took %.1f s", self.worker_id, took)

    def _safely(self, action: Callable[[], object]) -> None:
        # A database hiccup must not kill the thread: the next tick (every heartbeat interval)
        # is the retry. The traceback is logged once per outage, not twice a second.
        name = action.__name__
        try:
            action()
        except Exception as error:
            if is_connection_error(error):
                self.link.failed()
            log.warning("heartbeat %s of %s failed: %s", name, self.worker_id,
                        first_line(error), exc_info=name not in self._failing)
            self._failing.add(name)
        else:
            if action == self.beat:
                self.link.reached()
            self._failing.discard(name)
