"""Server-Sent Events: a job's new points, logs and status; and the job list's changes.

Without Last-Event-ID (or ``?after=``) a stream starts from now; GET /jobs/{id}/metrics gives the
history and the cursor to continue from. A stream holds no database session while it waits:
the checks at the start use a short one, and the process's one poller
(backend.services.stream_hub) brings the new rows. Every event's id is the cursor after it.
Besides ``end``, a stream may close with ``reconnect`` (it fell behind, or the server stops):
reconnecting with its Last-Event-ID resumes with no gap and no repeat.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from backend.api import deps
from backend.api.deps import SettingsDep
from backend.api.responses import errors
from backend.db import session_scope
from backend.services import events as service
from backend.services import stream_hub
from backend.services.events import Cursor, JobEvents, SentIds
from backend.services.jobs import get_job
from backend.services.stream_hub import JobBatch, ListBatch, Subscriber
from pruneboard.spec.types import INT64_MAX
from pruneboard.status import FINISHED

router = APIRouter(tags=["events"])
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
STREAM_DOC = {"description": "Server-Sent Events",
              "content": {"text/event-stream": {"schema": {"type": "string"}}}}


def sse(event: str, data, event_id: str | None = None) -> str:
    return frame(event, json.dumps(data, default=str), event_id)


def frame(event: str, encoded: str, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {encoded}\n\n"


@dataclass(frozen=True)
class StreamStart:
    """What a stream learnt in its one short session before it started."""

    credential: str
    now: Cursor
    job_id: int | None = None


def _authorize(request: Request, session: Session) -> str:
    """The caller's credential, checked as every read route checks it (401, 403)."""
    deps.require("read")(deps.authenticate(request, session))
    return deps.request_credential(request) or ""


def job_stream_start(request: Request, settings: SettingsDep,
                     job_id: Annotated[int, Path(ge=1, le=INT64_MAX)]) -> StreamStart:
    # Not SessionDep: a request-scoped session would stay open, inside its transaction, for
    # as long as the stream runs.
    with session_scope(settings.resolved_database_url) as session:
        credential = _authorize(request, session)
        if get_job(session, job_id) is None:
            raise HTTPException(404, f"job {job_id} not found")
        return StreamStart(credential, service.current_cursor(session), job_id)


def list_stream_start(request: Request, settings: SettingsDep) -> StreamStart:
    with session_scope(settings.resolved_database_url) as session:
        credential = _authorize(request, session)
        return StreamStart(credential, Cursor(change=service.newest_change_id(session)))


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse,
            responses={200: STREAM_DOC, **errors(401, 404, 422)})
async def job_events(
    request: Request, settings: SettingsDep,
    start: Annotated[StreamStart, Depends(job_stream_start)],
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[str | None, Query(description="cursor to resume from")] = None,
) -> StreamingResponse:
    cursor = Cursor.parse(last_event_id) or Cursor.parse(after) or start.now
    body = _job_stream(request, settings.resolved_database_url, start, JobView(cursor))
    return StreamingResponse(body, media_type="text/event-stream", headers=STREAM_HEADERS)


@router.get("/events", response_class=StreamingResponse,
            responses={200: STREAM_DOC, **errors(401, 422)})
async def list_events(
    request: Request, settings: SettingsDep,
    start: Annotated[StreamStart, Depends(list_stream_start)],
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    cursor = service.parse_change_id(last_event_id)
    view = ListView(start.now.change if cursor is None else cursor)
    body = _list_stream(request, settings.resolved_database_url, start, view)
    return StreamingResponse(body, media_type="text/event-stream", headers=STREAM_HEADERS)


class JobView:
    """What one client of a job stream has been sent; turns reads into its next events."""

    def __init__(self, cursor: Cursor) -> None:
        self.cursor = cursor
        # Lines up to the starting cursor were seen already (history, or before a reconnect).
        self.sent_logs = SentIds(cursor.log)
        self.first = True

    @property
    def event_id(self) -> str:
        return str(self.cursor)

    def take(self, item: JobEvents | JobBatch) -> tuple[list[str], bool]:
        """The events for this client, and whether the stream ends after them."""
        events = item.events if isinstance(item, JobBatch) else item
        if events.status is None:
            return [sse("end", {"reason": "job deleted"}, self.event_id)], True
        out = []
        points = events.points
        if points and points[0][0] <= self.cursor.metric:  # some came in its own catch-up
            points = [p for p in points if p[0] > self.cursor.metric]
        if points:
            self.cursor = self.cursor.but(metric=points[-1][0])
            encoded = events.points_json if len(points) == len(events.points) else \
                json.dumps({"points": [point for _, point in points]})
            out.append(frame("metrics", encoded, self.event_id))
        for line in events.logs:
            if line["id"] not in self.sent_logs:
                self.sent_logs.add(line["id"])
                self.cursor = self.cursor.but(log=max(self.cursor.log, line["id"]))
                out.append(sse("log", line, self.event_id))
        changed = (events.last_change or 0) > self.cursor.change
        if changed:
            self.cursor = self.cursor.but(change=events.last_change)
        busy = bool(out) or changed
        if changed or self.first:
            out.append(frame("status", events.status_json, self.event_id))
        self.first = False
        if isinstance(item, JobBatch):
            self.sent_logs.raise_floor(item.log_floor)
        # The end comes after a read that brought this client nothing new and was complete.
        if not busy and not events.full and events.status["status"] in FINISHED:
            out.append(sse("end", {"status": events.status["status"]}, self.event_id))
            return out, True
        return out, False


class ListView:
    """What one client of the job-list stream has been sent."""

    def __init__(self, cursor: int) -> None:
        self.cursor = cursor
        self.sent = SentIds(cursor)

    @property
    def event_id(self) -> str:
        return str(self.cursor)

    def take(self, item: list[dict[str, Any]] | ListBatch) -> tuple[list[str], bool]:
        changes = item.changes if isinstance(item, ListBatch) else item
        out = []
        for change in changes:
            if change["change_id"] not in self.sent:
                self.sent.add(change["change_id"])
                self.cursor = max(self.cursor, change["change_id"])
                out.append(sse("job", change, self.event_id))
        if isinstance(item, ListBatch):
            self.sent.raise_floor(item.floor)
        return out, False


def _read_job(url: str, job_id: int, view: JobView) -> JobEvents:
    with session_scope(url) as session:
        return service.read_job_events(session, job_id, view.cursor, view.sent_logs)


def _read_list(url: str, view: ListView) -> list[dict[str, Any]]:
    with session_scope(url) as session:
        return service.list_updates(session, max(view.cursor - service.LOOKBACK, 0))


async def _job_stream(request: Request, url: str, start: StreamStart,
                      view: JobView) -> AsyncIterator[str]:
    hub, job_id = stream_hub.hub_for(request.app), start.job_id
    subscriber = hub.watch_job(job_id, start.credential, start.now)
    try:
        # Registered first, so the hub's batches from now on wait in the queue; a read that
        # comes back not full has seen all the hub had read when this subscriber joined.
        while True:
            events = await run_in_threadpool(_read_job, url, job_id, view)
            frames, done = view.take(events)
            if frames:
                yield "".join(frames)  # one write for all of a read's events
            if done:
                return
            if not events.full:
                break
        async for text in _follow(request, subscriber, view):
            yield text
    finally:
        hub.leave(subscriber)


async def _list_stream(request: Request, url: str, start: StreamStart,
                       view: ListView) -> AsyncIterator[str]:
    hub = stream_hub.hub_for(request.app)
    subscriber = hub.watch_list(start.credential, start.now.change)
    try:
        while True:
            rows = await run_in_threadpool(_read_list, url, view)
            frames = view.take(rows)[0]
            if frames:
                yield "".join(frames)
            if len(rows) < service.LIST_BATCH:
                break
        async for text in _follow(request, subscriber, view):
            yield text
    finally:
        hub.leave(subscriber)


async def _follow(request: Request, subscriber: Subscriber,
                  view: JobView | ListView) -> AsyncIterator[str]:
    """The hub's batches, filtered by what this client has been sent, and its keepalives."""
    while True:
        if subscriber.closed is not None:
            if subscriber.closed == stream_hub.REVOKED:
                yield sse("end", {"reason": subscriber.closed}, view.event_id)
            else:
                yield sse("reconnect", {"reason": subscriber.closed,
                                        "last_event_id": view.event_id}, view.event_id)
            return
        item = await subscriber.queue.get()
        if item is None:  # closed: said above
            continue
        if item is stream_hub.KEEPALIVE:
            if await request.is_disconnected():
                return
            yield ": keepalive\n\n"
            continue
        frames, done = view.take(item)
        if frames:
            yield "".join(frames)
        if done:
            return
