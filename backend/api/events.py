"""Server-Sent Events: a job's new points, logs and status; and the job list's changes.

Without Last-Event-ID (or ``?after=``) a stream starts from now; GET /jobs/{id}/metrics gives the
history and the cursor to continue from.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from backend.api.deps import JobDep, Reader, SettingsDep
from backend.db import session_scope
from backend.models import Job
from backend.schemas import JobOut, LogOut
from backend.services import events as service
from backend.settings import Settings
from pruneboard.status import FINISHED

router = APIRouter(tags=["events"])
KEEPALIVE_S = 15.0
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(event: str, data, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


@router.get("/jobs/{job_id}/events")
async def job_events(
    request: Request, job: JobDep, settings: SettingsDep,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[str | None, Query(description="cursor to resume from")] = None,
) -> StreamingResponse:
    url, job_id = settings.resolved_database_url, job.id

    def start() -> service.Cursor:
        cursor = service.Cursor.parse(last_event_id) or service.Cursor.parse(after)
        if cursor is not None:
            return cursor
        with session_scope(url) as session:
            return service.current_cursor(session)

    sent_logs: deque[int] = deque(maxlen=2 * service.LOOKBACK)

    def poll(cursor: service.Cursor):
        with session_scope(url) as session:
            updates = service.job_updates(session, job_id, cursor, set(sent_logs))
            current = session.get(Job, job_id)
            status = JobOut.of(current).model_dump(mode="json") if current else None
            logs = [LogOut.model_validate(line).model_dump(mode="json") for line in updates.logs]
            return updates, status, logs

    async def stream() -> AsyncIterator[str]:
        cursor = await run_in_threadpool(start)
        # Lines just behind the starting cursor were seen already (history, or before the
        # reconnect): mark them sent so that the look-back does not repeat them.
        sent_logs.extend(range(max(cursor.log - service.LOOKBACK, 0) + 1, cursor.log + 1))
        first, idle = True, 0.0
        while not await request.is_disconnected():
            updates, status, logs = await run_in_threadpool(poll, cursor)
            cursor, event_id = updates.cursor, str(updates.cursor)
            if status is None:
                yield sse("end", {"reason": "job deleted"}, event_id)
                return
            if updates.points:
                yield sse("metrics", {"points": updates.points}, event_id)
            for line in logs:
                sent_logs.append(line["id"])
                yield sse("log", line, event_id)
            if updates.changed or first:
                yield sse("status", status, event_id)
            busy = bool(updates.points or logs or updates.changed)
            if not busy and status["status"] in FINISHED:
                yield sse("end", {"status": status["status"]}, event_id)
                return
            first = False
            idle = 0.0 if busy else idle + settings.sse_poll_interval_s
            if idle >= KEEPALIVE_S:
                idle = 0.0
                yield ": keepalive\n\n"
            if not busy or len(updates.points) < service.BATCH:
                await asyncio.sleep(settings.sse_poll_interval_s)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=STREAM_HEADERS)


@router.get("/events")
async def list_events(
    request: Request, _: Reader, settings: SettingsDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    return StreamingResponse(_list_stream(request, settings, last_event_id),
                             media_type="text/event-stream", headers=STREAM_HEADERS)


def _read_list_updates(url: str, after: int) -> list[dict]:
    with session_scope(url) as session:
        return service.list_updates(session, after)


async def _list_stream(request: Request, settings: Settings, last_event_id: str | None
                       ) -> AsyncIterator[str]:
    url = settings.resolved_database_url

    def newest() -> int:
        with session_scope(url) as session:
            return service.newest_change_id(session)

    # Change rows of different workers may commit out of id order: re-read a window behind
    # the cursor and skip what was already sent, so a late commit is not lost. Ids up to the
    # starting cursor count as sent: they are history, or came before a reconnect.
    lookback = service.LOOKBACK
    cursor = service.parse_change_id(last_event_id)
    if cursor is None:
        cursor = await run_in_threadpool(newest)
    sent = deque(range(max(cursor - lookback, 0) + 1, cursor + 1), maxlen=10 * lookback)
    idle = 0.0
    while not await request.is_disconnected():
        changes = [c for c in await run_in_threadpool(_read_list_updates, url,
                                                      max(cursor - lookback, 0))
                   if c["change_id"] not in sent]
        for change in changes:
            sent.append(change["change_id"])
            cursor = max(cursor, change["change_id"])
            yield sse("job", change, str(cursor))
        idle = 0.0 if changes else idle + settings.sse_poll_interval_s
        if idle >= KEEPALIVE_S:
            idle = 0.0
            yield ": keepalive\n\n"
        await asyncio.sleep(settings.sse_poll_interval_s)
