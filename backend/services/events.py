"""What the event streams send: everything after a cursor, read in bounded batches.

A job stream's cursor is the last metric point, log line and job change it has sent
(``m<id>.l<id>.c<id>``); a client that reconnects with it as Last-Event-ID misses nothing,
because ids only grow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Job, JobChange, JobLog, MetricPoint
from backend.schemas import JobOut, LogOut

_CURSOR = re.compile(r"m([0-9]{1,18})\.l([0-9]{1,18})\.c([0-9]{1,18})")
_CHANGE_ID = re.compile(r"[0-9]{1,18}")
BATCH = 5000
LIST_BATCH = 500
# Rows of different writers (the API's "cancel requested", a worker's lines) can commit out of
# id order; re-reading this many ids behind the cursor, minus those sent, keeps late ones.
LOOKBACK = 200


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

    def but(self, **fields: int) -> Cursor:
        return replace(self, **fields)


def parse_change_id(text: str | None) -> int | None:
    return int(text) if text and _CHANGE_ID.fullmatch(text) else None


class SentIds:
    """The ids of a look-back window already sent: every id up to ``floor``, and those above
    it in a set. Raising the floor forgets ids that can no longer be re-read."""

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self.ids: set[int] = set()

    def __contains__(self, row_id: object) -> bool:
        return isinstance(row_id, int) and (row_id <= self.floor or row_id in self.ids)

    def add(self, row_id: int) -> None:
        if row_id > self.floor:
            self.ids.add(row_id)

    def raise_floor(self, floor: int) -> None:
        if floor > self.floor:
            self.floor = floor
            self.ids = {row_id for row_id in self.ids if row_id > floor}


def current_cursor(session: Session) -> Cursor:
    """Now: the newest ids of all jobs (ids are global, so the primary keys answer at once)."""
    def newest(model):
        return session.scalar(select(func.max(model.id))) or 0
    return Cursor(newest(MetricPoint), newest(JobLog), newest(JobChange))


@dataclass(eq=False)
class JobEvents:
    """One read of a job's new rows after a cursor: points as (id, point), log lines (each
    with its id), the newest change id after the cursor (None: no change), the job now (None:
    deleted), and whether a batch limit cut the read short."""

    points: list[tuple[int, dict[str, Any]]]
    logs: list[dict[str, Any]]
    last_change: int | None
    status: dict[str, Any] | None
    full: bool

    @cached_property
    def points_json(self) -> str:
        """All points as a ``metrics`` event's data, encoded once for every subscriber."""
        return json.dumps({"points": [point for _, point in self.points]})

    @cached_property
    def status_json(self) -> str:
        return json.dumps(self.status, default=str)

    def advance(self, cursor: Cursor) -> Cursor:
        """The cursor after every row of this read."""
        return Cursor(self.points[-1][0] if self.points else cursor.metric,
                      max([cursor.log, *(line["id"] for line in self.logs)]),
                      max(cursor.change, self.last_change or 0))


def read_job_events(session: Session, job_id: int, after: Cursor,
                    sent_logs: Container[int] = ()) -> JobEvents:
    """A job's points after ``after.metric`` (one writer per job: they commit in id order),
    its log lines after ``after.log - LOOKBACK`` not in ``sent_logs``, its newest change."""
    points = session.execute(
        select(MetricPoint.id, MetricPoint.key, MetricPoint.step, MetricPoint.value)
        .where(MetricPoint.job_id == job_id, MetricPoint.id > after.metric)
        .order_by(MetricPoint.id).limit(BATCH)).all()
    lines = session.scalars(
        select(JobLog).where(JobLog.job_id == job_id, JobLog.id > after.log - LOOKBACK)
        .order_by(JobLog.id).limit(BATCH)).all()
    last_change = session.scalar(select(func.max(JobChange.id))
                                 .where(JobChange.job_id == job_id, JobChange.id > after.change))
    job = session.get(Job, job_id)
    return JobEvents(
        points=[(p.id, {"key": p.key, "step": p.step, "value": p.value}) for p in points],
        logs=[LogOut.model_validate(line).model_dump(mode="json")
              for line in lines if line.id not in sent_logs],
        last_change=last_change,
        status=JobOut.of(job).model_dump(mode="json") if job is not None else None,
        full=len(points) == BATCH or len(lines) == BATCH)


def newest_change_id(session: Session) -> int:
    return session.scalar(select(func.max(JobChange.id))) or 0


def list_updates(session: Session, after: int) -> list[dict]:
    """Job-list changes after change id ``after``, oldest first, at most LIST_BATCH."""
    rows = session.execute(
        select(JobChange, Job.total_steps).join(Job, Job.id == JobChange.job_id)
        .where(JobChange.id > after).order_by(JobChange.id).limit(LIST_BATCH)).all()
    return [{"change_id": change.id, "id": change.job_id, "status": change.status,
             "step": change.step, "total_steps": total, "latest": change.latest}
            for change, total in rows]
