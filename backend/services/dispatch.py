"""The outbox: which "run job N" and "run analysis N" messages are due.

A row is queued with ``dispatched_at`` NULL in the very transaction that queues it (submit, retry,
a reaper's requeue, a worker's hand-back, a new analysis), so a committed queued row always has a
message coming: whoever committed it sends at once, and the dispatchers (backend.queue, run by the
API and by every worker's heartbeat) send what is still pending. A queued row whose message went
out more than ``redispatch_after_s`` ago while a live worker sits idle (one up at least that long)
is due again: the message was evidently lost (a broker restarted without persistence, say). A
duplicate is harmless: a claim succeeds only on a queued row.

Plain functions that never commit: the dispatcher owns the transaction it sends in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from backend.models import Analysis, Job, ModelVersion, Worker, utcnow
from pruneboard.status import JobStatus

# "model": inspect a pushed model's version (worker.inspection).
Kind = Literal["job", "analysis", "model"]
_TABLES: dict[Kind, type[Job] | type[Analysis] | type[ModelVersion]] = {
    "job": Job, "analysis": Analysis, "model": ModelVersion}


@dataclass(frozen=True)
class Message:
    kind: Kind
    row_id: int


def mark_pending(row: Job | Analysis | ModelVersion) -> None:
    """The row's message is still to be sent: call it in the transaction that queues the row."""
    row.dispatched_at = None


def idle_worker_alive(session: Session, *, heartbeat_timeout_s: float,
                      up_for_s: float) -> bool:
    """A worker beat recently and runs no job, and has been up for ``up_for_s``: it would have
    taken any message waiting in the queue. (One that just started has not had the time, and
    counting it would re-send every waiting job at each worker start.)"""
    now = utcnow()
    return bool(session.scalar(select(exists().where(
        Worker.heartbeat_at >= now - timedelta(seconds=heartbeat_timeout_s),
        Worker.started_at <= now - timedelta(seconds=up_for_s),
        Worker.current_job_id.is_(None)))))


def due_messages(session: Session, *, redispatch_after_s: float, heartbeat_timeout_s: float,
                 limit: int = 200) -> list[Message]:
    """Queued rows whose message is pending, or evidently lost; on PostgreSQL their rows stay
    locked until the caller's transaction ends, and rows another dispatcher holds are skipped,
    so two dispatchers rarely send the same message twice."""
    now = utcnow()
    resend_lost = idle_worker_alive(session, heartbeat_timeout_s=heartbeat_timeout_s,
                                    up_for_s=redispatch_after_s)
    due: list[Message] = []
    for kind, table in _TABLES.items():
        condition = table.dispatched_at.is_(None)
        if resend_lost:
            condition = condition | (table.dispatched_at
                                     < now - timedelta(seconds=redispatch_after_s))
        query = (select(table.id).where(table.status == JobStatus.QUEUED, condition)
                 .order_by(table.id).limit(limit))
        if session.bind.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        due += [Message(kind, row_id) for row_id in session.scalars(query)]
    return due


def mark_dispatched(session: Session, messages: list[Message]) -> None:
    now = utcnow()
    for kind, table in _TABLES.items():
        ids = [m.row_id for m in messages if m.kind == kind]
        if ids:
            session.execute(update(table).where(table.id.in_(ids)).values(dispatched_at=now)
                            .execution_options(synchronize_session=False))
