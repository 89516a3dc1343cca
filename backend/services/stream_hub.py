"""One poller per process for the event streams, so that an open stream costs no database
connection while it waits.

Every ``sse_poll_interval_s`` the hub reads, in one short session in a worker thread, each
watched job's new rows (one query set per job, however many streams watch it) and the job
list's new changes, and puts the batch on every subscriber's queue. It also re-checks each
distinct credential of its subscribers every ``stream_auth_recheck_s`` and closes the streams
of one that was revoked or expired.

The hand-over, which keeps every row exactly once: a subscriber registers first, so every batch
the hub publishes from then on waits in its queue; then it catches up from its own cursor with
its own short reads until one read comes back not full (that read ran after registration, so
it saw everything the hub had read by then); then it takes the queued batches, dropping what it
has sent already by id. A job's metric points commit in id order (one writer per job), so
"id > the last point sent" is exact; log lines and list changes may commit out of id order, so
both the hub and each subscriber re-read LOOKBACK ids behind their cursor and keep the ids they
sent (``SentIds``). A subscriber whose queue fills up is closed with a ``reconnect`` event: its
Last-Event-ID resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from backend.auth import identify
from backend.db import session_scope
from backend.services import events as service
from backend.services.events import LOOKBACK, Cursor, JobEvents, SentIds
from backend.settings import Settings
from pruneboard.status import FINISHED

log = logging.getLogger(__name__)

# Batches a subscriber may fall behind before it is told to reconnect (at the default 0.2 s
# interval, about fifty seconds of a busy job).
QUEUE_SIZE = 256
# A subscriber that got nothing for this long gets KEEPALIVE, so that proxies and clients see
# the connection alive (from the hub's clock: no timer per waiting stream).
KEEPALIVE_S = 15.0
KEEPALIVE = "keepalive"

REVOKED = "token revoked or expired"
BEHIND = "this stream fell behind: reconnect with Last-Event-ID to resume"
SHUTDOWN = "the server is shutting down: reconnect with Last-Event-ID to resume"


@dataclass(eq=False)
class Subscriber:
    credential: str
    job_id: int | None  # None: the job list
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    closed: str | None = None  # why the hub let go of it
    last_offer: float = field(default_factory=lambda: asyncio.get_running_loop().time())

    def close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
        try:
            self.queue.put_nowait(None)  # wakes a subscriber waiting on an empty queue
        except asyncio.QueueFull:
            pass  # a full queue wakes it anyway


@dataclass(eq=False)
class JobBatch:
    events: JobEvents
    log_floor: int  # the hub re-reads no log id at or below this again


@dataclass(eq=False)
class ListBatch:
    changes: list[dict[str, Any]]
    floor: int  # the hub re-reads no change id at or below this again


@dataclass(eq=False)
class _Feed:
    cursor: Any  # Cursor for a job, a change id for the list
    sent: SentIds
    subscribers: set[Subscriber] = field(default_factory=set)


@dataclass
class _Read:
    jobs: dict[int, JobEvents]
    changes: list[dict[str, Any]] | None
    revoked: set[str]


class StreamHub:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.resolved_database_url
        self.interval = settings.sse_poll_interval_s
        self.auth_every = settings.stream_auth_recheck_s
        self.loop = asyncio.get_running_loop()
        self.jobs: dict[int, _Feed] = {}
        self.list: _Feed | None = None
        self.ticks = 0  # reads done, for tests and benchmarks
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._failing = False
        self._next_auth = self.loop.time() + self.auth_every

    def watch_job(self, job_id: int, credential: str, now: Cursor) -> Subscriber:
        """Register a subscriber of a job; a new feed starts at ``now``."""
        feed = self.jobs.get(job_id)
        if feed is None:
            feed = self.jobs[job_id] = _Feed(now, SentIds(now.log))
        return self._join(feed, Subscriber(credential, job_id))

    def watch_list(self, credential: str, now: int) -> Subscriber:
        if self.list is None:
            self.list = _Feed(now, SentIds(now))
        return self._join(self.list, Subscriber(credential, None))

    def leave(self, subscriber: Subscriber) -> None:
        feed = self._feed_of(subscriber)
        if feed is None:
            return
        feed.subscribers.discard(subscriber)
        if not feed.subscribers:
            if subscriber.job_id is None:
                self.list = None
            else:
                del self.jobs[subscriber.job_id]

    @property
    def subscribers(self) -> int:
        feeds = [*self.jobs.values(), *([self.list] if self.list else [])]
        return sum(len(feed.subscribers) for feed in feeds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for feed in [*self.jobs.values(), *([self.list] if self.list else [])]:
            for subscriber in feed.subscribers:
                subscriber.close(SHUTDOWN)
        self.jobs, self.list = {}, None

    def _join(self, feed: _Feed, subscriber: Subscriber) -> Subscriber:
        feed.subscribers.add(subscriber)
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run(), name="stream-hub")
        self._wake.set()
        return subscriber

    def _feed_of(self, subscriber: Subscriber) -> _Feed | None:
        feed = self.list if subscriber.job_id is None else self.jobs.get(subscriber.job_id)
        return feed if feed is not None and subscriber in feed.subscribers else None

    async def _run(self) -> None:
        while True:
            if not self.jobs and self.list is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            more = False
            try:
                more = await self._tick()
                if self._failing:
                    self._failing = False
                    log.warning("the event-stream poller reads the database again")
            except Exception:  # a database outage: keep the streams, try again next tick
                if not self._failing:  # once per outage, not every tick
                    log.exception("the event-stream poller cannot read the database")
                self._failing = True
            if not more:
                await asyncio.sleep(self.interval)

    async def _tick(self) -> bool:
        jobs, changes = dict(self.jobs), self.list
        credentials: set[str] = set()
        if self.loop.time() >= self._next_auth:
            self._next_auth = self.loop.time() + self.auth_every
            for feed in [*jobs.values(), *([changes] if changes else [])]:
                credentials.update(s.credential for s in feed.subscribers)
        # The thread only reads the feeds' cursors and sent ids; they change only below, on
        # the event loop, once it is done.
        read = await asyncio.to_thread(self._read, jobs, changes, credentials)
        self.ticks += 1
        more = False
        for job_id, events in read.jobs.items():
            if self.jobs.get(job_id) is jobs[job_id]:
                more |= self._publish_job(jobs[job_id], events)
        if read.changes is not None and self.list is changes:
            more |= self._publish_list(changes, read.changes)
        quiet_since = self.loop.time() - KEEPALIVE_S
        for feed in [*self.jobs.values(), *([self.list] if self.list else [])]:
            for subscriber in list(feed.subscribers):
                if subscriber.credential in read.revoked:
                    self._drop(subscriber, REVOKED)
                elif subscriber.last_offer <= quiet_since:
                    self._offer(subscriber, KEEPALIVE)
        return more

    def _read(self, jobs: dict[int, _Feed], changes: _Feed | None,
              credentials: set[str]) -> _Read:
        with session_scope(self.url) as session:
            job_events = {job_id: service.read_job_events(session, job_id, feed.cursor,
                                                          feed.sent)
                          for job_id, feed in jobs.items()}
            new_changes = None if changes is None else service.list_updates(
                session, max(changes.cursor - LOOKBACK, 0))
        revoked = set()
        if credentials:  # apart: a sign of use may be written, which must not hold the reads
            with session_scope(self.url) as session:
                revoked = {c for c in credentials if identify(session, c) is None}
        return _Read(job_events, new_changes, revoked)

    def _publish_job(self, feed: _Feed, events: JobEvents) -> bool:
        feed.cursor = events.advance(feed.cursor)
        for line in events.logs:
            feed.sent.add(line["id"])
        feed.sent.raise_floor(feed.cursor.log - LOOKBACK)
        busy = bool(events.points or events.logs or events.last_change is not None)
        ending = events.status is None or events.status["status"] in FINISHED
        if busy or ending:
            batch = JobBatch(events, feed.sent.floor)
            for subscriber in list(feed.subscribers):
                # A quiet batch only tells a finished job's streams that nothing more came;
                # one that still has batches to take learns that from a later one.
                if busy or subscriber.queue.empty():
                    self._offer(subscriber, batch)
        return events.full

    def _publish_list(self, feed: _Feed, rows: list[dict[str, Any]]) -> bool:
        changes = [row for row in rows if row["change_id"] not in feed.sent]
        for change in changes:
            feed.sent.add(change["change_id"])
            feed.cursor = max(feed.cursor, change["change_id"])
        feed.sent.raise_floor(feed.cursor - LOOKBACK)
        if changes:
            batch = ListBatch(changes, feed.sent.floor)
            for subscriber in list(feed.subscribers):
                self._offer(subscriber, batch)
        return len(rows) == service.LIST_BATCH

    def _offer(self, subscriber: Subscriber, batch: JobBatch | ListBatch | str) -> None:
        try:
            subscriber.queue.put_nowait(batch)
        except asyncio.QueueFull:
            self._drop(subscriber, BEHIND)
        else:
            subscriber.last_offer = self.loop.time()

    def _drop(self, subscriber: Subscriber, reason: str) -> None:
        self.leave(subscriber)
        subscriber.close(reason)


def hub_for(app) -> StreamHub:
    """The app's hub, made on first use in the running event loop."""
    hub = getattr(app.state, "stream_hub", None)
    if hub is None or hub.loop is not asyncio.get_running_loop():
        hub = app.state.stream_hub = StreamHub(app.state.settings)
    return hub


async def stop_hub(app) -> None:
    hub = getattr(app.state, "stream_hub", None)
    if hub is not None:
        await hub.stop()
