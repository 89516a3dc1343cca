"""The event streams' one poller (backend.services.stream_hub): streams hold no database
connection while they wait, every stream gets every row exactly once however it joined, and a
revoked credential or a stream that fell behind ends it the documented way.

The load tests against a real uvicorn process are in test_event_streams_under_load.py; these
use TestClient, whose response body has no buffer, so a test that stops reading really holds a
stream back.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import delete, event, update
from stream_kit import (
    JOBS,
    PER_BATCH,
    finish,
    logs_of,
    new_job,
    new_token,
    parse,
    steps_of,
    ticks_pass,
    until,
    write_batch,
)

from backend.db import get_engine, session_scope
from backend.main import create_app
from backend.models import ApiToken, Job, utcnow
from backend.services import stream_hub
from backend.services.jobs import delete_job


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
