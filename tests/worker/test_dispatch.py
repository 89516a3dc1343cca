"""The outbox (backend.services.dispatch, backend.queue) without worker processes: what is due,
what a failed send leaves pending, how fast a send gives up on a broker that is down, and the
API's side of it: a submit that the broker cannot take, Idempotency-Key, /healthz."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select

from backend import queue
from backend.auth import create_token
from backend.db import session_scope
from backend.main import create_app
from backend.models import Analysis, IdempotencyKey, Job, Worker, utcnow
from backend.services.dispatch import Message, due_messages
from backend.settings import Settings

JOBS = "/api/v1/jobs"
BODY = {"model": "mlp", "mlp_widths": [8], "epochs": 1}


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, make_db):
    # PostgreSQL: a database of its own, so no other test's queued rows are due here.
    name = "sqlite_url" if request.param == "sqlite" else "private_postgres_url"
    return make_db(request.getfixturevalue(name))


def settings_for(db, **values) -> Settings:
    return Settings(database_url=db.url, heartbeat_timeout_s=3, redispatch_after_s=30,
                    **values)


def add_worker(db, *, busy_with: int | None = None, beat_ago_s: float = 0,
               up_for_s: float = 600) -> None:
    now = utcnow()
    with db.engine.begin() as connection:
        connection.execute(insert(Worker).values(
            id=f"w:{uuid.uuid4().hex[:6]}:cpu", host="w", device="cpu",
            started_at=now - timedelta(seconds=up_for_s),
            heartbeat_at=now - timedelta(seconds=beat_ago_s), current_job_id=busy_with,
            datasets=[]))


def due(db) -> list[Message]:
    with session_scope(db.url) as session:
        return due_messages(session, redispatch_after_s=30, heartbeat_timeout_s=3)


def test_pending_rows_are_due_and_lost_ones_only_while_a_worker_sits_idle(db):
    pending = db.create_job(dispatched_at=None)
    lost = db.create_job(dispatched_at=utcnow() - timedelta(seconds=60))
    db.create_job(dispatched_at=utcnow() - timedelta(seconds=5))  # recently sent: in the queue
    db.create_job(status="running", attempt=1, dispatched_at=None)  # claimed already
    with db.engine.begin() as connection:
        analysis = connection.scalar(insert(Analysis).values(
            job_id=pending, options={}, status="queued", progress=0.0).returning(Analysis.id))

    assert due(db) == [Message("job", pending), Message("analysis", analysis)]
    add_worker(db, busy_with=pending)  # busy: the lost message may still be waiting for it
    add_worker(db, beat_ago_s=10)  # idle, but its heartbeat is older than the timeout: gone
    add_worker(db, up_for_s=5)  # idle, but only just started: it may not have looked yet
    assert due(db) == [Message("job", pending), Message("analysis", analysis)]
    add_worker(db)  # idle, alive and up for long: it would have taken any waiting message
    assert due(db) == [Message("job", pending), Message("job", lost),
                       Message("analysis", analysis)]


def test_a_round_sends_what_is_due_and_a_broker_failure_leaves_the_rest_pending(db):
    first, second, third = (db.create_job(dispatched_at=None) for _ in range(3))
    sent = []

    def send(message: Message) -> None:
        if message.row_id == second:
            raise ConnectionError("broker down")
        sent.append(message.row_id)

    assert queue.dispatch_due(settings_for(db), send=send) == 1
    assert sent == [first]
    assert db.job(first).dispatched_at is not None
    assert db.job(second).dispatched_at is None and db.job(third).dispatched_at is None

    assert queue.dispatch_due(settings_for(db), send=lambda m: sent.append(m.row_id)) == 2
    assert sent == [first, second, third] and due(db) == []


def test_dispatch_now_never_raises_and_leaves_an_unsent_row_pending(db):
    job_id = db.create_job(dispatched_at=None)

    def down(message: Message) -> None:
        raise ConnectionError("broker down")

    assert queue.dispatch_now(settings_for(db), [Message("job", job_id)], send=down) is False
    assert db.job(job_id).dispatched_at is None
    assert queue.dispatch_now(settings_for(db), [Message("job", job_id)],
                              send=lambda m: None) is True
    assert db.job(job_id).dispatched_at is not None


def test_a_send_to_a_broker_that_is_down_or_hangs_gives_up_within_a_second(own_redis, tmp_path):
    settings = Settings(data_dir=tmp_path, broker_url=own_redis.url,
                        queue_name=f"pruneboard-test-{uuid.uuid4().hex[:8]}")
    limit = queue.SEND_TIMEOUT_S + 0.5

    def refused_send(row_id: int) -> float:
        started = time.monotonic()
        with pytest.raises(Exception):  # noqa: B017 - kombu's or redis's: either will do
            queue.send_message(settings, Message("job", row_id))
        return time.monotonic() - started

    def probe() -> tuple[str | None, float]:
        started = time.monotonic()
        return queue.broker_problem(settings), time.monotonic() - started

    queue.send_message(settings, Message("job", 1))  # a pooled connection, as in a server
    assert probe()[0] is None
    own_redis.process.send_signal(signal.SIGSTOP)  # takes connections, answers nothing
    try:
        assert refused_send(2) < limit
        problem, seconds = probe()
        assert problem == "broker unreachable: OperationalError" and seconds < limit
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    own_redis.stop()  # connections refused
    assert refused_send(3) < limit
    problem, seconds = probe()
    assert problem == "broker unreachable: OperationalError" and seconds < limit


@pytest.fixture(params=["postgresql", "sqlite"])
def api(request, own_redis, tmp_path):
    """The real app on a database of its own and a Redis of the test's own, with a submit
    token's headers."""
    url = request.getfixturevalue("private_postgres_url" if request.param == "postgresql"
                                  else "sqlite_url")
    settings = Settings(data_dir=tmp_path, database_url=url, broker_url=own_redis.url,
                        dispatch_interval_s=0.2,
                        queue_name=f"pruneboard-test-{uuid.uuid4().hex[:8]}")
    with session_scope(url) as session:
        token = create_token(session, name="alice", scope="submit")
    with TestClient(create_app(settings)) as client:
        client.headers.update({"Authorization": f"Bearer {token}"})
        client.redis, client.db_url = own_redis, url
        yield client


def jobs_in(url: str) -> int:
    with session_scope(url) as session:
        return session.scalar(select(func.count()).select_from(Job))


def test_a_submit_while_the_broker_is_down_is_queued_and_sent_when_it_is_back(api, make_db,
                                                                              wait_for):
    assert api.get("/api/v1/healthz").json() == {"status": "ok", "database": "ok",
                                                  "broker": "ok"}
    api.redis.stop()
    health = api.get("/api/v1/healthz")
    assert health.status_code == 503
    assert health.json()["status"] == "degraded" and health.json()["database"] == "ok"
    assert health.json()["broker"].startswith("broker unreachable")

    started = time.monotonic()
    response = api.post(JOBS, json=BODY)
    assert response.status_code == 201, response.text
    assert time.monotonic() - started < 2
    job_id = response.json()["id"]
    db = make_db(api.db_url)
    assert (db.job(job_id).status, db.job(job_id).dispatched_at) == ("queued", None)

    api.redis.start()  # the app's dispatcher sends it (no worker here to take it)
    wait_for(lambda: db.job(job_id).dispatched_at is not None, timeout=10,
             what="the dispatcher to send the pending job")
    assert api.get("/api/v1/healthz").status_code == 200


def test_the_same_idempotency_key_and_body_return_the_first_job(api):
    key = {"Idempotency-Key": "submit-1"}
    first = api.post(JOBS, json=BODY, headers=key)
    assert first.status_code == 201
    # The same body, its keys in another order: still the same request.
    again = api.post(JOBS, json=dict(reversed(BODY.items())), headers=key)
    assert (again.status_code, again.json()) == (201, first.json())
    assert api.post(JOBS, json=BODY).json()["id"] != first.json()["id"]  # no key: a new job
    assert api.post(JOBS, json=BODY, headers={"Idempotency-Key": "submit-2"}).json()["id"] \
        not in (first.json()["id"],)
    assert jobs_in(api.db_url) == 3


def test_the_same_idempotency_key_with_another_body_is_refused(api):
    key = {"Idempotency-Key": "submit-1"}
    assert api.post(JOBS, json=BODY, headers=key).status_code == 201
    refused = api.post(JOBS, json={**BODY, "epochs": 2}, headers=key)
    assert refused.status_code == 422
    [entry] = refused.json()["detail"]
    assert entry["field"] == "Idempotency-Key" and "different body" in entry["message"]
    too_long = api.post(JOBS, json=BODY, headers={"Idempotency-Key": "k" * 201})
    assert too_long.status_code == 422
    assert too_long.json()["detail"][0]["field"] == "Idempotency-Key"
    assert jobs_in(api.db_url) == 1


def test_keys_are_per_owner(api):
    key = {"Idempotency-Key": "shared-name"}
    mine = api.post(JOBS, json=BODY, headers=key).json()["id"]
    with session_scope(api.db_url) as session:
        token = create_token(session, name="bob", scope="submit")
    theirs = api.post(JOBS, json=BODY, headers={**key, "Authorization": f"Bearer {token}"})
    assert theirs.status_code == 201 and theirs.json()["id"] != mine


def test_concurrent_submits_with_one_key_create_one_job(api):
    barrier = threading.Barrier(4)
    answers = []

    def submit() -> None:
        barrier.wait()
        answers.append(api.post(JOBS, json=BODY, headers={"Idempotency-Key": "race"}))

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert jobs_in(api.db_url) == 1
    with session_scope(api.db_url) as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1


def test_the_idempotency_key_header_is_documented(api):
    operation = api.get("/api/v1/openapi.json").json()["paths"]["/api/v1/jobs"]["post"]
    [header] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert header["in"] == "header" and not header.get("required")
    assert "same key" in header["description"]
    schema = header["schema"]
    if "anyOf" in schema:
        schema = next(option for option in schema["anyOf"] if option.get("type") == "string")
    assert schema["maxLength"] == 200 and schema["pattern"] == r"^[^\x00]*$"
