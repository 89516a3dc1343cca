"""What the event streams send: everything after a cursor, read in bounded batches.

A job stream's cursor is the last metric point, log line and job change it has sent
(``m<id>.l<id>.c<id>``); a client that reconnects with it as Last-Event-ID misses nothing,
because ids only grow.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Job, JobChange, JobLog, MetricPoint

_CURSOR = re.compile(r"m([0-9]{1,18})\.l([0-9]{1,18})\.c([0-9]{1,18})")
_CHANGE_ID = re.compile(r"[0-9]{1,18}")
BATCH = 5000


@dataclass(frozen=True)
class Cursor:
    metric: int = 0
    log: int = 0
    change: int = 0

    def __str__(self) -> str:
        return f"m{self.metric}.l{self.log}.c{self.change}"

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        match = _CURSOR.fullmatch(text or "")
        return cls(*map(int, match.groups())) if match else None


def parse_change_id(text: str | None) -> int | None:
    return int(text) if text and _CHANGE_ID.fullmatch(text) else None


def current_cursor(session: Session) -> Cursor:
    """Now: the newest ids of all jobs (ids are global, so the primary keys answer at once)."""
    def newest(model):
        return session.scalar(select(func.max(model.id))) or 0
    return Cursor(newest(MetricPoint), newest(JobLog), newest(JobChange))


@dataclass
class JobUpdates:
    cursor: Cursor
    points: list[dict]
    logs: list[JobLog]
    changed: bool


# Rows of different writers (the API's "cancel requested", a worker's lines) can commit out of
# id order; re-reading this many ids behind the cursor, minus those sent, keeps late ones.
LOOKBACK = 200


def job_updates(session: Session, job_id: int, after: Cursor,
                sent_logs: Collection[int] = ()) -> JobUpdates:
    points = session.execute(
        select(MetricPoint.id, MetricPoint.key, MetricPoint.step, MetricPoint.value)
        .where(MetricPoint.job_id == job_id, MetricPoint.id > after.metric)
        .order_by(MetricPoint.id).limit(BATCH)).all()
    logs = [line for line in session.scalars(
        select(JobLog).where(JobLog.job_id == job_id, JobLog.id > after.log - LOOKBACK)
        .order_by(JobLog.id).limit(BATCH)) if line.id not in sent_logs]
    last_change = session.scalar(select(func.max(JobChange.id))
                                 .where(JobChange.job_id == job_id, JobChange.id > after.change))
    cursor = Cursor(points[-1].id if points else after.metric,
                    max([after.log, *(line.id for line in logs)]),
                    last_change or after.change)
    return JobUpdates(cursor=cursor,
                      points=[{"key": p.key, "step": p.step, "value": p.value} for p in points],
                      logs=logs, changed=last_change is not None)


def newest_change_id(session: Session) -> int:
    return session.scalar(select(func.max(JobChange.id))) or 0


def list_updates(session: Session, after: int) -> list[dict]:
    """Job-list changes after change id ``after``, oldest first."""
    rows = session.execute(
        select(JobChange, Job.total_steps).join(Job, Job.id == JobChange.job_id)
        .where(JobChange.id > after).order_by(JobChange.id).limit(500)).all()
    return [{"change_id": change.id, "id": change.job_id, "status": change.status,
             "step": change.step, "total_steps": total, "latest": change.latest}
            for change, total in rows]
