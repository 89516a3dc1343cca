"""Loss-valley analyses: which job pairs may be compared, and the rows that track each run.
Plain functions that never commit (see backend.services.jobs); the caller sends the run message
after its commit (backend.queue.dispatch_now)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Analysis, Job
from backend.services.jobs import IllegalTransition
from pruneboard.status import JobStatus

# A guard against a runaway script, not a scheduler: more than this many analyses of one job
# waiting or running at once is refused (HTTP 409) until some finish.
MAX_PENDING = 3

# Config fields that fix the network's shape: a reference must agree on all of them, or its
# weights do not fit the pruned job's architecture.
ARCHITECTURE_FIELDS = ("model", "dataset", "mlp_widths", "synthetic_shape", "synthetic_classes")


class BadReference(ValueError):
    """The reference job cannot be compared with this job (HTTP 422 on reference_job_id)."""


def create_analysis(session: Session, job: Job, *, reference: Job | None,
                    options: dict[str, Any], owner: str | None = None) -> Analysis:
    """Queue an analysis of ``job`` against ``reference`` (None: the job's own SGD twin) for
    ``owner`` (default: the job's owner, as for the analysis a worker starts after a twin job);
    its run message is owed from this transaction on (backend.services.dispatch)."""
    if job.status != JobStatus.SUCCEEDED:
        raise IllegalTransition(f"job {job.id} is {job.status}; analyses need a job that "
                                f"succeeded")
    if reference is None:
        if job.config.get("reference", "none") == "none":
            raise BadReference(f"job {job.id} trained no SGD twin (reference none); pass the id "
                               f"of a finished job with the same model and dataset")
    else:
        check_reference(job, reference)
    pending = session.scalar(select(func.count()).select_from(Analysis).where(
        Analysis.job_id == job.id, Analysis.status.in_((JobStatus.QUEUED, JobStatus.RUNNING))))
    if pending >= MAX_PENDING:
        raise IllegalTransition(f"job {job.id} has {pending} analyses queued or running; wait "
                                f"for one to finish")
    analysis = Analysis(job_id=job.id, reference_job_id=reference.id if reference else None,
                        options=options, status=JobStatus.QUEUED, progress=0.0,
                        message="queued", owner=owner or job.owner, dispatched_at=None)
    session.add(analysis)
    session.flush()
    return analysis


def check_reference(job: Job, reference: Job) -> None:
    if reference.id == job.id:
        raise BadReference("a job cannot be its own reference")
    if reference.status != JobStatus.SUCCEEDED:
        raise BadReference(f"job {reference.id} is {reference.status}; the reference must "
                           f"have succeeded")
    differing = [name for name in ARCHITECTURE_FIELDS
                 if job.config.get(name) != reference.config.get(name)]
    if differing:
        raise BadReference(f"job {reference.id} differs from job {job.id} in "
                           f"{', '.join(differing)}; the two networks must have the same shape")


def list_analyses(session: Session, job_id: int) -> list[Analysis]:
    return list(session.scalars(select(Analysis).where(Analysis.job_id == job_id)
                                .order_by(Analysis.id)))
