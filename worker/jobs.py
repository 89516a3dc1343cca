"""Every status change a worker makes to a job, each one conditional UPDATE plus its history rows.

A job is leased to one run by ``(status='running', attempt=N)``: the claim increments ``attempt``,
and every later write of that run is conditioned on the same ``attempt``. A worker that was
presumed dead and whose job was requeued (and perhaps claimed again) therefore cannot overwrite
the newer run's state: its conditional UPDATE matches no row and it learns it lost the job.

``attempt`` counts leases, not failures: ``worker_losses`` counts the runs whose worker went away
(reaped), and only those use up the job's ``max_attempts``; a hand-back (shutdown, a database
outage) counts nothing.

None of these functions commit; the caller's ``session_scope`` is the one transaction, so a status
change, its ``JobChange`` row and its log line land together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from backend.models import Analysis, Job, JobChange, JobLog, ModelVersion, Worker, utcnow
from backend.services.models import FAILED
from pruneboard.status import JobStatus


@dataclass(frozen=True)
class Claim:
    attempt: int
    config: dict[str, Any]


@dataclass(frozen=True)
class Reaped:
    job_id: int
    status: JobStatus  # queued (to be re-sent), failed or cancelled
    attempt: int
    worker_losses: int
    lost_worker: str | None


def add_history(session: Session, job_id: int, status: JobStatus, message: str, *, step: int = 0,
                latest: dict | None = None, level: str = "info") -> None:
    session.execute(insert(JobChange).values(job_id=job_id, status=status, step=step,
                                             latest=latest or {}, note=message))
    session.execute(insert(JobLog).values(job_id=job_id, level=level, message=message))


def claim_job(session: Session, job_id: int, worker_id: str) -> Claim | None:
    """Take a queued job, or None when it is not queued (cancelled, finished, already taken by
    another worker, or this is a stale redelivery of a message whose job has moved on)."""
    now = utcnow()
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED, Job.cancel_requested.is_(False))
        .values(status=JobStatus.RUNNING, attempt=Job.attempt + 1, worker_id=worker_id,
                heartbeat_at=now, started_at=func.coalesce(Job.started_at, now), error=None,
                finished_at=None)
        .returning(Job.attempt, Job.config, Job.step, Job.latest)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return _own_claim(session, job_id, worker_id)
    add_history(session, job_id, JobStatus.RUNNING, f"attempt {row.attempt} started on {worker_id}",
                step=row.step, latest=row.latest)
    return Claim(attempt=row.attempt, config=row.config)


def _own_claim(session: Session, job_id: int, worker_id: str) -> Claim | None:
    """The job runs under this very process already: a claim whose commit went through while
    the connection broke (so it was retried), or a run of ours whose outcome was never written.
    This process runs one job at a time and is claiming, so it is not running it: take it on."""
    row = session.execute(
        select(Job.attempt, Job.config)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.worker_id == worker_id)
    ).first()
    return None if row is None else Claim(attempt=row.attempt, config=row.config)


def cancel_queued_job(session: Session, job_id: int) -> bool:
    """A queued job whose cancel was requested ends here, so it never sits 'queued' forever."""
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED, Job.cancel_requested.is_(True))
        .values(status=JobStatus.CANCELLED, finished_at=utcnow())
        .returning(Job.step, Job.latest)
        .execution_options(synchronize_session=False)
    ).first()
    if row is not None:
        add_history(session, job_id, JobStatus.CANCELLED, "cancelled before it started",
                    step=row.step, latest=row.latest)
    return row is not None


def finish_job(session: Session, job_id: int, attempt: int, status: JobStatus, message: str, *,
               summary: dict | None = None, error: str | None = None,
               level: str = "info") -> bool:
    """End the run ``attempt`` as succeeded, failed or cancelled; False if it no longer owns the
    job (the reaper requeued it meanwhile)."""
    values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "error": error}
    if summary is not None:
        values["summary"] = summary
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.attempt == attempt)
        .values(**values)
        .returning(Job.step, Job.latest)
        .execution_options(synchronize_session=False)
    ).first()
    if row is not None:
        add_history(session, job_id, status, message, step=row.step, latest=row.latest,
                    level=level)
    return row is not None


def requeue_job(session: Session, job_id: int, attempt: int, message: str) -> bool:
    """Hand a job this worker is running back to the queue (the worker is shutting down, or
    the database was unreachable too long), its run message owed in the same transaction. No
    worker loss is counted: the worker is not gone."""
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.attempt == attempt)
        .values(status=JobStatus.QUEUED, dispatched_at=None)
        .returning(Job.step, Job.latest)
        .execution_options(synchronize_session=False)
    ).first()
    if row is not None:
        add_history(session, job_id, JobStatus.QUEUED, message, step=row.step, latest=row.latest,
                    level="warning")
    return row is not None


def reap_lost_jobs(session: Session, *, timeout_s: float, max_losses: int) -> list[Reaped]:
    """Jobs whose worker stopped heart-beating lost it (killed, machine gone): one more worker
    loss each; requeued from the last checkpoint (run message owed in this transaction), failed
    once they reach ``max_losses``, or cancelled when a cancel was pending. Call only when this
    process has reached the database long enough to trust what the heartbeats say (see
    worker.outage).

    One UPDATE ... WHERE status='running' AND heartbeat_at < cutoff: when two workers reap at the
    same moment, PostgreSQL re-checks the WHERE after the first one's commit (SQLite serialises
    writers), so each lost job is taken by exactly one reaper and counted exactly once.
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=timeout_s)
    losses = Job.worker_losses + 1
    outcome = case((Job.cancel_requested.is_(True), JobStatus.CANCELLED),
                   (losses >= max_losses, JobStatus.FAILED), else_=JobStatus.QUEUED)
    finished = case((Job.cancel_requested.is_(True), now),
                    (losses >= max_losses, now), else_=None)
    rows = session.execute(
        update(Job)
        .where(Job.status == JobStatus.RUNNING,
               or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff))
        .values(status=outcome, finished_at=finished, worker_losses=losses, dispatched_at=None)
        .returning(Job.id, Job.status, Job.attempt, Job.worker_losses, Job.worker_id, Job.step,
                   Job.latest)
        .execution_options(synchronize_session=False)
    ).all()
    reaped = []
    for row in rows:
        lost = f"worker {row.worker_id} lost"
        count = f"loss {row.worker_losses} of {max_losses} allowed"
        status = JobStatus(row.status)
        if status == JobStatus.QUEUED:
            message = f"{lost} ({count}); requeued from its last checkpoint"
        elif status == JobStatus.FAILED:
            message = f"{lost} ({count}); giving up"
            session.execute(update(Job).where(Job.id == row.id).values(error=message)
                            .execution_options(synchronize_session=False))
        else:
            message = f"{lost}; cancelled as requested"
        add_history(session, row.id, status, message, step=row.step, latest=row.latest,
                    level="warning" if status != JobStatus.CANCELLED else "info")
        reaped.append(Reaped(row.id, status, row.attempt, row.worker_losses, row.worker_id))
    return reaped


def reap_lost_analyses(session: Session, *, timeout_s: float) -> int:
    """Fail analyses whose worker stopped beating (nothing of them was stored; a POST starts
    them again)."""
    cutoff = utcnow() - timedelta(seconds=timeout_s)
    message = "the worker running this analysis was lost; start it again"
    return session.execute(
        update(Analysis)
        .where(Analysis.status == JobStatus.RUNNING,
               or_(Analysis.heartbeat_at.is_(None), Analysis.heartbeat_at < cutoff))
        .values(status=JobStatus.FAILED, error=message, message=message, finished_at=utcnow())
        .execution_options(synchronize_session=False)).rowcount


def reap_lost_inspections(session: Session, *, timeout_s: float) -> int:
    """Fail the inspections whose worker stopped beating. Not requeued: a model whose rebuild
    or forward pass takes a worker down (out of memory, say) would take the next one down too."""
    cutoff = utcnow() - timedelta(seconds=timeout_s)
    live = select(Worker.id).where(Worker.heartbeat_at >= cutoff)
    message = ("the worker inspecting it was lost (it may have run out of memory on this "
               "model); push it again")
    return session.execute(
        update(ModelVersion)
        .where(ModelVersion.status == JobStatus.RUNNING,
               or_(ModelVersion.worker_id.is_(None), ModelVersion.worker_id.not_in(live)))
        .values(status=FAILED, error=message, finished_at=utcnow())
        .execution_options(synchronize_session=False)).rowcount
