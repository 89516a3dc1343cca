"""Job queries and state changes. Plain functions that never commit: the caller owns the
transaction, and enqueues only after its commit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from backend.models import (
    Job,
    JobChange,
    JobLog,
    JobTag,
    MetricPoint,
    MetricRollup,
    utcnow,
)
from pruneboard.status import FINISHED, JobStatus


class IllegalTransition(Exception):
    """The job is not in a state that allows this action (HTTP 409)."""


@dataclass(frozen=True)
class JobFilter:
    status: JobStatus | None = None
    owner: str | None = None
    tag: str | None = None
    text: str | None = None


def create_job(session: Session, *, owner: str, config: dict[str, Any], name: str | None,
               tags: list[str]) -> Job:
    job = Job(owner=owner, name=name, config=config, model=config["model"],
              dataset=config["dataset"], method=config["method"], status=JobStatus.QUEUED,
              tags=[JobTag(tag=t) for t in dict.fromkeys(tags)], latest={}, step=0, attempt=0,
              cancel_requested=False)
    session.add(job)
    session.flush()
    record_change(session, job, note="submitted")
    return job


def record_change(session: Session, job: Job, note: str | None = None) -> None:
    session.add(JobChange(job_id=job.id, status=job.status, step=job.step,
                          latest=dict(job.latest or {}), note=note))


def add_log(session: Session, job_id: int, message: str, level: str = "info") -> None:
    session.add(JobLog(job_id=job_id, message=message, level=level))


def list_jobs(session: Session, filters: JobFilter, *, limit: int, offset: int
              ) -> tuple[list[Job], int]:
    query = select(Job)
    if filters.status:
        query = query.where(Job.status == filters.status)
    if filters.owner:
        query = query.where(Job.owner == filters.owner)
    if filters.tag:
        query = query.where(Job.id.in_(select(JobTag.job_id).where(JobTag.tag == filters.tag)))
    if filters.text:
        # autoescape: the text as typed, its % and _ matching themselves, not any characters.
        text = filters.text.lower()
        query = query.where(or_(*(func.lower(column).contains(text, autoescape=True) for column
                                  in (Job.name, Job.model, Job.dataset, Job.method, Job.owner))))
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    jobs = session.scalars(query.order_by(Job.id.desc()).limit(limit).offset(offset)).all()
    return list(jobs), total or 0


def get_job(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def request_cancel(session: Session, job: Job) -> Job:
    """A queued job is cancelled at once and never starts; a running one is flagged and its
    worker stops at the next step, keeping the metrics so far."""
    if job.status in FINISHED:
        raise IllegalTransition(f"job {job.id} is already {job.status}")
    # Conditional, because a worker may claim the job between our read and this write.
    cancelled = session.execute(
        update(Job).where(Job.id == job.id, Job.status == JobStatus.QUEUED)
        .values(status=JobStatus.CANCELLED, cancel_requested=True, finished_at=utcnow())
        .execution_options(synchronize_session=False)).rowcount
    session.refresh(job)
    if cancelled:
        record_change(session, job, note="cancelled before it started")
    elif job.status == JobStatus.RUNNING:
        job.cancel_requested = True
        add_log(session, job.id, "cancel requested")
    else:
        raise IllegalTransition(f"job {job.id} is already {job.status}")
    return job


def retry_job(session: Session, job: Job) -> Job:
    """Queue a finished-but-unsuccessful job again; its worker resumes from the last
    checkpoint, and metrics already stored are kept (re-sent steps are ignored)."""
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise IllegalTransition(f"only failed or cancelled jobs can be retried; job {job.id} is "
                                f"{job.status}")
    # A retry is a fresh start for the count of lost workers, as it is for the error.
    job.status, job.cancel_requested, job.error, job.finished_at, job.worker_losses = (
        JobStatus.QUEUED, False, None, None, 0)
    record_change(session, job, note="retry requested")
    add_log(session, job.id, "retry requested: resumes from the last checkpoint")
    return job


def delete_job(session: Session, job: Job, artifact_dir: Path) -> Path:
    """Delete the job's rows; returns its artifact folder, for the caller to remove once the
    deletion is committed (files cannot be rolled back)."""
    # Conditional, because a worker may claim a queued job between our read and this write.
    deleted = session.execute(delete(Job).where(Job.id == job.id, Job.status != JobStatus.RUNNING)
                              .execution_options(synchronize_session=False)).rowcount
    if not deleted:
        raise IllegalTransition(f"job {job.id} is running; cancel it first")
    # Bulk deletes: a job may own millions of metric points, which have no foreign key.
    for table in (MetricPoint, MetricRollup, JobLog, JobChange, JobTag):
        session.execute(delete(table).where(table.job_id == job.id))
    session.expunge(job)
    return job_artifacts(artifact_dir, job.id)


def job_artifacts(artifact_dir: Path, job_id: int) -> Path:
    return artifact_dir / "jobs" / str(job_id)


def status_history(session: Session, job_id: int) -> list[JobChange]:
    """The changes where the status moved (progress updates in between are left out)."""
    changes = session.scalars(select(JobChange).where(JobChange.job_id == job_id)
                              .order_by(JobChange.id)).all()
    history, last = [], None
    for change in changes:
        if change.status != last:
            history.append(change)
            last = change.status
    return history


def job_logs(session: Session, job_id: int, *, after_id: int = 0, limit: int = 1000
             ) -> list[JobLog]:
    return list(session.scalars(select(JobLog).where(JobLog.job_id == job_id,
                                                     JobLog.id > after_id)
                                .order_by(JobLog.id).limit(limit)).all())
