"""Per-owner caps on queued + running work: a guard against one script filling the queue for
everyone, not a scheduler. Plain functions that never write.

Every caller is held to the caps, admin tokens included: a runaway admin script floods the
workers just the same, and an admin who needs more raises the setting. Work counts against the
owner it will run for: a new job against the caller, a retried job against the job's owner
(whoever pressed retry), an analysis against whoever started it. Two requests racing past the
check at once may overshoot a cap by one each; that is within what the cap is for.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Analysis, Job
from backend.settings import Settings
from pruneboard.status import JobStatus

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
# What a refused caller is told to wait before trying again (the Retry-After header).
RETRY_AFTER_S = 30


class QuotaExceeded(Exception):
    """The owner is at a cap (HTTP 429 with Retry-After)."""

    def __init__(self, message: str, retry_after_s: int = RETRY_AFTER_S):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def active_jobs(session: Session, owner: str) -> int:
    return session.scalar(select(func.count()).select_from(Job).where(
        Job.owner == owner, Job.status.in_(ACTIVE)))


def active_analyses(session: Session, owner: str) -> int:
    # Rows from before analyses had an owner (NULL) count for the owner of the analysed job.
    return session.scalar(select(func.count()).select_from(Analysis)
                          .join(Job, Job.id == Analysis.job_id)
                          .where(Analysis.status.in_(ACTIVE),
                                 func.coalesce(Analysis.owner, Job.owner) == owner))


def check_jobs(session: Session, settings: Settings, *, owner: str) -> None:
    """Refuse one more queued job for ``owner`` at max_active_jobs_per_owner."""
    _check(active_jobs(session, owner), settings.max_active_jobs_per_owner, owner,
           "jobs", "PRUNEBOARD_MAX_ACTIVE_JOBS_PER_OWNER", " or cancel them")


def check_analyses(session: Session, settings: Settings, *, owner: str) -> None:
    """Refuse one more queued analysis for ``owner`` at max_active_analyses_per_owner."""
    _check(active_analyses(session, owner), settings.max_active_analyses_per_owner, owner,
           "analyses", "PRUNEBOARD_MAX_ACTIVE_ANALYSES_PER_OWNER", "")


def _check(active: int, cap: int, owner: str, what: str, setting: str, relief: str) -> None:
    if active >= cap:
        raise QuotaExceeded(f"owner {owner} has {active} queued or running {what}, the cap "
                            f"({setting}={cap}); wait for some to finish{relief}")
