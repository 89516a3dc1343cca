"""The event streams' one poller (backend.services.stream_hub): streams hold no database
connection while they wait, every stream gets every row exactly once however it joined, and a
revoked credential or a stream that fell behind ends it the documented way.

Where connections matter the API runs as a real uvicorn process; the rest uses TestClient,
whose response body has no buffer, so a test that stops reading really holds a stream back.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
from embedded import free_port
from fastapi.testclient import TestClient
from processes import stop_process_group, wait_for
from sqlalchemy import create_engine, delete, event, text, update
from sqlalchemy.pool import NullPool

from backend.auth import create_token
from backend.db import get_engine, session_scope
from backend.main import create_app
from backend.models import ApiToken, Job, utcnow
from backend.services import stream_hub
from backend.services.ingest import insert_points
from backend.services.jobs import add_log, create_job, delete_job, record_change
from backend.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
JOBS = "/api/v1/jobs"
PER_BATCH = 50


def new_job(url: str) -> int:
    with session_scope(url) as session:
        job = create_job(session, owner="streams", name="streams", tags=[],
                         config={"model": "mlp", "dataset": "digits", "method": "sdprun"})
        job.status = "running"
        return job.id


def new_token(url: str, scope: str = "read") -> tuple[str, dict[str, str]]:
    name = f"stream-{uuid.uuid4().hex[:8]}"
    with session_scope(url) as session:
        token = create_token(session, name=name, scope=scope)
    return name, {"Authorization": f"Bearer {token}"}


def write_batch(url: str, job_id: int, batch: int) -> None:
    """Points batch*PER_BATCH … and one log line, in one commit, as a worker's flush."""
    steps = range(batch * PER_BATCH, (batch + 1) * PER_BATCH)
    with session_scope(url) as session:
        insert_points(session, job_id, [("loss", step, float(step), 0.0) for step in steps])
        add_log(session, job_id, f"batch {batch}")


def finish(url: str, job_id: int) -> None:
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        job.status, job.finished_at = "succeeded", utcnow()
        record_change(session, job, note="done")


def parse(lines) -> Iterator[dict]:
    current: dict = {}
    for line in lines:
        if not line:
            if current:
                yield current
            current = {}
        elif line.startswith(("id:", "event:", "data:")):
            name, _, value = line.partition(":")
            current[name] = value.strip()


def steps_of(events: list[dict]) -> list[int]:
    return [p["step"] for e in events if e["event"] == "metrics"
            for p in json.loads(e["data"])["points"]]


def logs_of(events: list[dict]) -> list[str]:
    return [json.loads(e["data"])["message"] for e in events if e["event"] == "log"]


def until(events: Iterator[dict], predicate) -> list[dict]:
    """Events up to and including the first one for which ``predicate(seen)`` holds."""
    seen = []
    for item in events:
        seen.append(item)
        if predicate(seen):
            return seen
    raise AssertionError(f"the stream ended after {[e['event'] for e in seen]}")


def ticks_pass(hub: stream_hub.StreamHub, count: int = 2) -> None:
    """Wait for the hub to finish ``count`` reads started after now (the first may be one in
    flight that read too early), or to have no subscriber left (then it reads no more)."""
    start = hub.ticks
    wait_for(lambda: hub.ticks >= start + count or not hub.subscribers, timeout=60,
             what="the stream hub's reads")


@contextmanager
def serve(settings: Settings, **extra: str) -> Iterator[str]:
    """The API in its own uvicorn process, on the test's database; yields its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRUNEBOARD_")}
    env.update(PRUNEBOARD_DATA_DIR=str(settings.data_dir),
               PRUNEBOARD_QUEUE_NAME=settings.queue_name,
               PRUNEBOARD_SSE_POLL_INTERVAL_S=str(settings.sse_poll_interval_s), **extra)
    if settings.database_url:
        env["PRUNEBOARD_DATABASE_URL"] = settings.database_url
    if settings.broker_url:
        env["PRUNEBOARD_BROKER_URL"] = settings.broker_url
    port, log_path = free_port(), settings.data_dir / f"api-{uuid.uuid4().hex[:6]}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "backend.main:app", "--port", str(port),
             "--log-level", "warning"], cwd=ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/api/v1/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None  # died: fail below with its log

    try:
        wait_for(healthy, timeout=60, what="the API server", details=log_path.read_text)
        assert process.poll() is None, log_path.read_text()
        yield url
    finally:
        stop_process_group(process)


async def listen(http: httpx.AsyncClient, path: str, headers: dict, ready: list,
                 params: dict | None = None) -> list[dict]:
    """One stream's events until ``end`` or ``reconnect``; appends to ``ready`` at its first."""
    events: list[dict] = []
    async with http.stream("GET", path, headers=headers, params=params) as response:
        assert response.status_code == 200, await response.aread()
        lines: list[str] = []
        async for line in response.aiter_lines():
            lines.append(line)
            if line:
                continue
            had_any = bool(events)
            events.extend(parse(lines))
            lines = []
            if events and not had_any:
                ready.append(path)
            if events and events[-1]["event"] in ("end", "reconnect"):
                break
    return events


async def wait_ready(ready: list, count: int) -> None:
    while len(ready) < count:
        await asyncio.sleep(0.02)


def test_every_stream_gets_every_point_once_however_it_joined(settings):
    """30 streams of one job on a real server while a writer commits batches: ten from "now"
    before the first batch, ten from the job's start cursor while the hub is ahead of them (so
    they catch up on their own, then join), ten more later with Last-Event-ID."""
    url, batches = settings.resolved_database_url, 20
    job_id = new_job(url)
    _, headers = new_token(url)
    with serve(settings) as api:
        start = httpx.get(f"{api}{JOBS}/{job_id}/metrics", headers=headers).json()["cursor"]

        async def scenario() -> list[list[dict]]:
            path, ready, written = f"{JOBS}/{job_id}/events", [], []
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=api, timeout=60, limits=limits) as http:
                def group(**kwargs):
                    return [asyncio.create_task(listen(http, path, ready=ready, **kwargs))
                            for _ in range(10)]

                def writer() -> None:
                    for batch in range(batches):
                        write_batch(url, job_id, batch)
                        written.append(batch)
                        time.sleep(0.03)

                streams = group(headers=headers)
                await wait_ready(ready, 10)
                writing = asyncio.create_task(asyncio.to_thread(writer))
                while len(written) < 5:
                    await asyncio.sleep(0.01)
                streams += group(headers=headers, params={"after": start})
                while len(written) < 12:
                    await asyncio.sleep(0.01)
                streams += group(headers={**headers, "Last-Event-ID": start})
                await writing
                await asyncio.to_thread(finish, url, job_id)
                return await asyncio.gather(*streams)

        results = asyncio.run(asyncio.wait_for(scenario(), 180))
    assert len(results) == 30
    for events in results:
        assert steps_of(events) == list(range(batches * PER_BATCH))
        assert logs_of(events) == [f"batch {b}" for b in range(batches)]
        assert events[-1]["event"] == "end"
        assert json.loads(events[-1]["data"]) == {"status": "succeeded"}


def test_more_streams_than_connections_leave_reads_answering(postgres_url, tmp_path,
                                                            redis_url, queue_name):
    """40 open streams against a pool of 10 + 20 connections: no session idles in a
    transaction, and GET /jobs/ID still answers (it waited for a free connection before)."""
    settings = Settings(data_dir=tmp_path, database_url=postgres_url, broker_url=redis_url,
                        queue_name=queue_name, sse_poll_interval_s=30.0)
    pool = get_engine(postgres_url).pool  # the server's engine is made the same way
    assert pool.size() + pool._max_overflow < 40
    job_id = new_job(postgres_url)
    _, headers = new_token(postgres_url)
    probe = create_engine(postgres_url, poolclass=NullPool)
    with serve(settings) as api:

        async def scenario() -> tuple[list, list[int]]:
            ready: list = []
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=api, timeout=60, limits=limits) as http:
                streams = [asyncio.create_task(listen(http, f"{JOBS}/{job_id}/events",
                                                      headers, ready)) for _ in range(30)]
                # From change 0: each gets the job's "submitted" change at once.
                streams += [asyncio.create_task(listen(
                    http, "/api/v1/events", {**headers, "Last-Event-ID": "0"}, ready))
                    for _ in range(10)]
                await wait_ready(ready, 40)  # every stream has done its first read
                with probe.connect() as connection:
                    idle = connection.execute(text(
                        "SELECT pid, query FROM pg_stat_activity WHERE datname = "
                        "current_database() AND pid <> pg_backend_pid() "
                        "AND state = 'idle in transaction'")).all()
                answers = [(await http.get(f"{JOBS}/{job_id}", headers=headers)).status_code,
                           (await http.get(JOBS, headers=headers)).status_code]
                for stream in streams:
                    stream.cancel()
                await asyncio.gather(*streams, return_exceptions=True)
                return idle, answers

        idle, answers = asyncio.run(asyncio.wait_for(scenario(), 180))
    probe.dispose()
    assert idle == []
    assert answers == [200, 200]


def test_resume_with_last_event_id_while_the_hub_is_ahead(client, settings):
    """A stream drops, the job goes on (another stream keeps the hub reading), and the
    reconnect with Last-Event-ID catches up and joins again: every point once."""
    url = settings.resolved_database_url
    job_id = new_job(url)
    _, headers = new_token(url)
    path = f"{JOBS}/{job_id}/events"
    with ExitStack() as stack:
        other = stack.enter_context(client.stream("GET", path, headers=headers))
        assert next(parse(other.iter_lines()))["event"] == "status"
        hub = client.app.state.stream_hub
        with client.stream("GET", path, headers=headers) as response:
            events = parse(response.iter_lines())
            assert next(events)["event"] == "status"
            write_batch(url, job_id, 0)
            write_batch(url, job_id, 1)
            first = until(events, lambda seen: len(steps_of(seen)) >= 2 * PER_BATCH
                          and len(logs_of(seen)) == 2)
        write_batch(url, job_id, 2)  # while nobody but the other stream listens
        ticks_pass(hub)
        last_id = first[-1]["id"]
        with client.stream("GET", path, headers={**headers, "Last-Event-ID": last_id}
                           ) as response:
            events = parse(response.iter_lines())
            second = [next(events)]
            write_batch(url, job_id, 3)
            finish(url, job_id)
            second += until(events, lambda seen: seen[-1]["event"] == "end")
    assert steps_of(first) + steps_of(second) == list(range(4 * PER_BATCH))
    assert logs_of(first) + logs_of(second) == [f"batch {b}" for b in range(4)]


def test_revoked_or_expired_credentials_end_open_streams(settings):
    url = settings.resolved_database_url
    quick = settings.model_copy(update={"stream_auth_recheck_s": 0.1})
    job_id = new_job(url)
    expiring, bearer = new_token(url)
    revoked, other = new_token(url)
    with TestClient(create_app(quick)) as client:
        signed_in = client.post("/api/v1/session",
                                json={"token": other["Authorization"][7:]})
        assert signed_in.status_code == 200 and "pruneboard_session" in client.cookies
        with ExitStack() as stack:
            job_stream = parse(stack.enter_context(client.stream(
                "GET", f"{JOBS}/{job_id}/events", headers=bearer)).iter_lines())
            list_stream = parse(stack.enter_context(client.stream(  # by the cookie
                "GET", "/api/v1/events", headers={"Last-Event-ID": "0"})).iter_lines())
            assert next(job_stream)["event"] == "status"
            assert next(list_stream)["event"] == "job"
            with session_scope(url) as session:
                session.execute(update(ApiToken).where(ApiToken.name == expiring)
                                .values(expires_at=utcnow() - timedelta(seconds=1)))
                session.execute(delete(ApiToken).where(ApiToken.name == revoked))
            for stream in (job_stream, list_stream):
                ended = until(stream, lambda seen: seen[-1]["event"] == "end")[-1]
                assert json.loads(ended["data"]) == {"reason": "token revoked or expired"}


def test_one_read_per_job_per_tick_however_many_streams(settings):
    """Ten streams of one job and five of the list: the hub reads the job's points once per
    tick, and the list's changes once, not once per stream."""
    url = settings.resolved_database_url
    job_id = new_job(url)
    _, headers = new_token(url)
    counts = {"points": 0, "changes": 0}

    def count(conn, cursor, statement, parameters, context, executemany):
        if "FROM metric_points" in statement and "job_id" in statement:
            counts["points"] += 1
        if "FROM job_changes JOIN jobs" in statement:
            counts["changes"] += 1

    app = create_app(settings)
    with TestClient(app) as client, ExitStack() as stack:
        for path, extra in [(f"{JOBS}/{job_id}/events", {})] * 10 + \
                [("/api/v1/events", {"Last-Event-ID": "0"})] * 5:
            response = stack.enter_context(client.stream("GET", path,
                                                         headers={**headers, **extra}))
            next(parse(response.iter_lines()))  # its own first read is done
        hub = app.state.stream_hub
        assert hub.subscribers == 15
        engine = get_engine(url)
        event.listen(engine, "before_cursor_execute", count)
        try:
            start = hub.ticks
            ticks_pass(hub, 10)
            ticks = hub.ticks - start
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert ticks >= 10
        assert 0 < counts["points"] <= ticks + 1
        assert 0 < counts["changes"] <= ticks + 1
    assert app.state.stream_hub._task is None  # stopped with the app


def test_a_stream_that_falls_behind_is_told_to_reconnect_and_resumes(settings, monkeypatch):
    monkeypatch.setattr(stream_hub, "QUEUE_SIZE", 2)
    url = settings.resolved_database_url
    job_id = new_job(url)
    _, headers = new_token(url)
    path = f"{JOBS}/{job_id}/events"
    with TestClient(create_app(settings)) as client:
        with client.stream("GET", path, headers=headers) as response:
            events = parse(response.iter_lines())
            assert next(events)["event"] == "status"
            hub = client.app.state.stream_hub
            # Not reading: the stream blocks on its first batch, two more fill its queue, and
            # the one after that drops it.
            for batch in range(5):
                write_batch(url, job_id, batch)
                ticks_pass(hub)
            assert hub.subscribers == 0
            first = until(events, lambda seen: seen[-1]["event"] == "reconnect")
        told = json.loads(first[-1]["data"])
        assert told["last_event_id"] == first[-1]["id"]
        assert steps_of(first) and len(steps_of(first)) < 5 * PER_BATCH
        with client.stream("GET", path, headers={**headers, "Last-Event-ID": told[
                "last_event_id"]}) as response:
            events = parse(response.iter_lines())
            second = [next(events)]
            finish(url, job_id)
            second += until(events, lambda seen: seen[-1]["event"] == "end")
    assert steps_of(first) + steps_of(second) == list(range(5 * PER_BATCH))
    assert logs_of(first) + logs_of(second) == [f"batch {b}" for b in range(5)]


def test_deleting_the_job_ends_its_streams(client, settings):
    url = settings.resolved_database_url
    job_id = new_job(url)
    _, headers = new_token(url)
    with client.stream("GET", f"{JOBS}/{job_id}/events", headers=headers) as response:
        events = parse(response.iter_lines())
        assert next(events)["event"] == "status"
        with session_scope(url) as session:
            job = session.get(Job, job_id)
            job.status = "failed"
            session.flush()
            delete_job(session, job, settings.resolved_artifact_dir)
        ended = until(events, lambda seen: seen[-1]["event"] == "end")[-1]
    assert json.loads(ended["data"]) == {"reason": "job deleted"}


def test_streams_refuse_before_they_start(client, settings):
    url = settings.resolved_database_url
    job_id = new_job(url)
    _, headers = new_token(url)
    assert client.get(f"{JOBS}/{job_id}/events").status_code == 401
    assert client.get("/api/v1/events", headers={
        "Authorization": "Bearer pb_0123456789abcdef_" + "x" * 40}).status_code == 401
    missing = client.get(f"{JOBS}/{job_id + 1000}/events", headers=headers)
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]
    assert client.get(f"{JOBS}/0/events", headers=headers).status_code == 422


def test_quiet_streams_get_keepalives(settings, monkeypatch):
    """From the hub's clock, with no timer per stream: a comment line a proxy passes on."""
    monkeypatch.setattr(stream_hub, "KEEPALIVE_S", 0.2)
    url = settings.resolved_database_url
    job_id = new_job(url)
    _, headers = new_token(url)
    with TestClient(create_app(settings)) as client, client.stream(
            "GET", f"{JOBS}/{job_id}/events", headers=headers) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("event:")) == "event: status"
        assert next(line for line in lines if line.startswith(":")) == ": keepalive"
