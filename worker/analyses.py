"""The ``pruneboard.run_analysis(analysis_id)`` task: a loss-valley analysis of a finished job.

Like jobs, an analysis is claimed by a conditional UPDATE (queued → running), so a redelivered
message is a no-op; its progress is written at most every ``_PROGRESS_INTERVAL_S``; the worker's
heartbeat thread touches its ``heartbeat_at`` while it runs, and every worker's reaper fails an
analysis whose worker stopped beating (it can be started again; nothing is half-written, the
result lands in one UPDATE with the status).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.db import session_scope
from backend.models import Analysis, Job, utcnow
from backend.settings import Settings
from pruneboard.status import JobStatus
from pruning.checkpoint import checkpoint_path
from pruning.valley.analysis_run import AnalysisError, run_valley_analysis
from worker.heartbeat import Heartbeat
from worker.outage import DatabaseUnreachable, is_connection_error, with_retries
from worker.pushed_models import job_model
from worker.tasks import job_config, json_safe, worker_shutting_down

log = logging.getLogger(__name__)
_PROGRESS_INTERVAL_S = 0.5


def run_analysis(analysis_id: int, *, settings: Settings, beat: Heartbeat) -> str:
    url = settings.resolved_database_url

    def claim():
        with session_scope(url) as session:
            return _claim(session, analysis_id, beat.worker_id)

    # Past the grace this raises; the row stays queued and the dispatchers send it again.
    claimed = with_retries(claim, link=beat.link, grace_s=settings.db_outage_grace_s,
                           what=f"claiming analysis {analysis_id}")
    if claimed is None:
        log.info("analysis %s not claimed (not queued)", analysis_id)
        return "skipped"
    job, reference, options = claimed
    beat.set_analysis(analysis_id)
    last_write = 0.0

    def on_progress(fraction: float, message: str) -> None:
        nonlocal last_write
        now = time.monotonic()
        if now - last_write < _PROGRESS_INTERVAL_S and fraction < 1:
            return
        last_write = now
        try:
            with session_scope(url) as session:
                session.execute(update(Analysis).where(Analysis.id == analysis_id,
                                                       Analysis.status == JobStatus.RUNNING)
                                .values(progress=min(max(fraction, 0.0), 1.0), message=message,
                                        heartbeat_at=utcnow()))
        except Exception as error:
            if not is_connection_error(error):
                raise
            # Progress is only a display: skipped while the database is away, and the run goes on.
            beat.link.failed()

    try:
        config = job_config(job["config"], settings, job["id"], beat.device)
        reference_checkpoint = None
        if reference is not None:
            reference_config = job_config(reference["config"], settings, reference["id"],
                                          beat.device)
            reference_checkpoint = checkpoint_path(reference_config.checkpoint_dir)
        result = json_safe(run_valley_analysis(
            config, checkpoint=checkpoint_path(config.checkpoint_dir),
            reference_checkpoint=reference_checkpoint, options=options,
            on_progress=on_progress, model=_pushed_module(settings, config)))
    except Exception as error:
        message = str(error) if isinstance(error, AnalysisError) else (
            f"{type(error).__name__}: {error}")
        log.error("analysis %s failed: %s", analysis_id, message,
                  exc_info=not isinstance(error, AnalysisError))
        return _finish(url, analysis_id, JobStatus.FAILED, beat, error=message)
    finally:
        beat.clear_analysis()
    return _finish(url, analysis_id, JobStatus.SUCCEEDED, beat, result=result)


def _pushed_module(settings: Settings, config):
    pushed = job_model(settings, config.model, config.model_version)
    return pushed.module if pushed is not None else None


def _claim(session: Session, analysis_id: int, worker_id: str):
    now = utcnow()
    row = session.execute(
        update(Analysis).where(Analysis.id == analysis_id, Analysis.status == JobStatus.QUEUED)
        .values(status=JobStatus.RUNNING, worker_id=worker_id, started_at=now, heartbeat_at=now,
                message="starting")
        .returning(Analysis.job_id, Analysis.reference_job_id, Analysis.options)
        .execution_options(synchronize_session=False)).first()
    if row is None:
        return None
    job = _job_values(session, row.job_id)
    reference = _job_values(session, row.reference_job_id) if row.reference_job_id else None
    return job, reference, row.options


def _job_values(session: Session, job_id: int) -> dict[str, Any]:
    config = session.scalar(select(Job.config).where(Job.id == job_id))
    return {"id": job_id, "config": config}


def _finish(url: str, analysis_id: int, status: JobStatus, beat: Heartbeat, *,
            result: dict | None = None, error: str | None = None) -> str:
    def write() -> int:
        with session_scope(url) as session:
            return session.execute(
                update(Analysis)
                .where(Analysis.id == analysis_id, Analysis.status == JobStatus.RUNNING)
                .values(status=status, result=result, error=error, finished_at=utcnow(),
                        progress=1.0 if status == JobStatus.SUCCEEDED else Analysis.progress,
                        message=status if error is None else error.splitlines()[0])
                .execution_options(synchronize_session=False)).rowcount

    # The outcome is known: waited for as long as the database is away. A worker shutting down
    # first leaves the row running, and the reapers fail it.
    try:
        owned = with_retries(write, link=beat.link, grace_s=None,
                             what=f"recording analysis {analysis_id} {status}",
                             give_up=worker_shutting_down)
    except DatabaseUnreachable as unreachable:
        log.error("analysis %s: %s", analysis_id, unreachable)
        return "lost"
    return status if owned else "lost"
