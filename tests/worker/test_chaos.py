"""Chaos with real processes: a Redis of the test's own stopped and started again around
running, waiting and newly submitted jobs, and a PostgreSQL cluster of the test's own stopped
for a few seconds under two running jobs. In each: every job that got a 2xx finishes, every
(key, step) point is stored once, and an outage uses up none of a job's allowed worker losses.
(A worker killed with -9, which does count one, is tests/worker/test_recovery.py.)

The numbers these runs measure are printed (pytest -s shows them).
"""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from backend.auth import create_token
from backend.db import get_engine, session_scope
from backend.main import create_app
from backend.settings import Settings

JOBS = "/api/v1/jobs"
HEALTH = "/api/v1/healthz"
# The outbox's pace, quickened like the heartbeat's in FAST_SETTINGS.
CHAOS_SETTINGS = {"PRUNEBOARD_DISPATCH_INTERVAL_S": "0.5", "PRUNEBOARD_REDISPATCH_AFTER_S": "2"}
SMALL_JOB = {"model": "mlp", "mlp_widths": [32, 16], "epochs": 3, "log_interval": 5}
# Long enough (tens of seconds on one core) to be running through each outage.
# Long enough (about 25 s on an idle 2-core machine) to outlast the Redis outage below, which
# takes some 5 s of health checks, submits with 1 s send timeouts and a pause; 30 epochs (6 s)
# sometimes finished first.
LONG_JOB = {**SMALL_JOB, "epochs": 120}


def env_for(database_url: str, broker_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PRUNEBOARD_DATABASE_URL": database_url, "PRUNEBOARD_BROKER_URL": broker_url,
            "PRUNEBOARD_QUEUE_NAME": f"pruneboard-test-{uuid.uuid4().hex[:8]}",
            "PRUNEBOARD_DATA_DIR": str(tmp_path), **CHAOS_SETTINGS, **extra}


@contextmanager
def api_for(env: dict[str, str]):
    """The real app (its lifespan runs the API's dispatcher) with a submit token."""
    settings = Settings(database_url=env["PRUNEBOARD_DATABASE_URL"],
                        broker_url=env["PRUNEBOARD_BROKER_URL"],
                        queue_name=env["PRUNEBOARD_QUEUE_NAME"],
                        data_dir=Path(env["PRUNEBOARD_DATA_DIR"]), dispatch_interval_s=0.5,
                        redispatch_after_s=2, heartbeat_timeout_s=3)
    with session_scope(settings.resolved_database_url) as session:
        token = create_token(session, name="chaos", scope="submit")
    with TestClient(create_app(settings)) as client:
        client.headers.update({"Authorization": f"Bearer {token}"})
        yield client


def submit(client: TestClient, body: dict, **headers: str) -> dict:
    response = client.post(JOBS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def assert_finished_cleanly(db, job_id: int, *, epochs: int, attempts: int = 1) -> None:
    job = db.job(job_id)
    assert job.status == "succeeded", (job.error, db.logs(job_id))
    assert (job.attempt, job.worker_losses) == (attempts, 0), db.logs(job_id)
    db.assert_complete_series(job_id, epochs=epochs, log_interval=SMALL_JOB["log_interval"])
    db.assert_points_once(job_id)
    assert not any(" lost" in line for line in db.logs(job_id)), db.logs(job_id)


def started_at(db, job_id: int) -> float:
    return db.job(job_id).started_at.timestamp()


def test_jobs_survive_redis_going_away_around_a_submit_and_losing_its_messages(
        own_redis, private_postgres_url, private_pg, workers, tmp_path, wait_for):
    db = private_pg
    env = env_for(private_postgres_url, own_redis.url, tmp_path)
    workers.start(env)
    with api_for(env) as api:
        running = submit(api, LONG_JOB)["id"]
        wait_for(lambda: db.job(running).step > 0, timeout=90, what="the first job to run",
                 details=workers.output)
        # Sent while the only worker is busy: its message waits in Redis, and is lost with it.
        waiting = submit(api, SMALL_JOB)["id"]
        assert db.job(waiting).dispatched_at is not None

        own_redis.stop()
        health = api.get(HEALTH)
        assert health.status_code == 503
        assert health.json()["database"] == "ok" and health.json()["status"] == "degraded"
        assert health.json()["broker"] != "ok"
        clock = time.monotonic()
        first = api.post(JOBS, json=SMALL_JOB, headers={"Idempotency-Key": "while-down"})
        latency = time.monotonic() - clock
        assert first.status_code == 201, first.text
        during = first.json()["id"]
        assert (db.job(during).status, db.job(during).dispatched_at) == ("queued", None)
        # The client's retry after a doubtful answer: the same job, not a second one.
        again = api.post(JOBS, json=SMALL_JOB, headers={"Idempotency-Key": "while-down"})
        assert (again.status_code, again.json()) == (201, first.json())
        time.sleep(2)
        assert db.job(running).status == "running", "the first job ended before Redis did"

        own_redis.start()
        back = time.time()
        for job_id in (running, during, waiting):
            db.wait_status(job_id, ("succeeded", "failed"), timeout=120, workers=workers)
        assert api.get(HEALTH).status_code == 200

    for job_id, body in ((running, LONG_JOB), (during, SMALL_JOB), (waiting, SMALL_JOB)):
        assert_finished_cleanly(db, job_id, epochs=body["epochs"])
    # Its first message went down with Redis: the one it ran on was sent after Redis was back.
    assert db.job(waiting).dispatched_at.timestamp() > back
    print(f"\nPOST /jobs with Redis down: {latency:.3f} s; after Redis came back, the job "
          f"submitted meanwhile started in {started_at(db, during) - back:.1f} s, the one "
          f"whose message Redis lost in {started_at(db, waiting) - back:.1f} s")


def test_a_database_restart_mid_job_costs_no_attempt(own_postgres, own_redis, workers,
                                                     make_db, enqueue, tmp_path, wait_for):
    """Two workers, each running a job, and PostgreSQL down for 5 s (longer than the heartbeat
    timeout, so after it every heartbeat is stale). The patient worker (grace 300 s) waits the
    outage out and finishes its run; the hasty one (grace 2 s) stops its run and hands the job
    back once it can write again. Neither reaps the other's job, and no loss is counted."""
    url = own_postgres.create_database()
    db = make_db(url)
    # 4 s, not FAST_SETTINGS' 3: two runs share two cores with PostgreSQL here, and the outage
    # still outlasts the timeout.
    timeout = {"PRUNEBOARD_HEARTBEAT_TIMEOUT_S": "4"}
    patient = env_for(url, own_redis.url, tmp_path, **timeout)
    hasty = env_for(url, own_redis.url, tmp_path, **timeout, PRUNEBOARD_DB_OUTAGE_GRACE_S="2")
    jobs = {}
    try:
        for env in (patient, hasty):
            workers.start(env)
        for name, env in (("patient", patient), ("hasty", hasty)):
            jobs[name] = db.create_job(LONG_JOB)
            enqueue(env, jobs[name])
        wait_for(lambda: all(db.job(j).step >= 40 for j in jobs.values()), timeout=120,
                 what="both jobs to run", details=workers.output)

        own_postgres.stop()
        time.sleep(5)
        own_postgres.start()
        back = time.monotonic()
        for job_id in jobs.values():
            db.wait_status(job_id, ("succeeded", "failed"), timeout=120, workers=workers)
        took = time.monotonic() - back
    finally:
        get_engine(url).dispose()

    assert_finished_cleanly(db, jobs["patient"], epochs=LONG_JOB["epochs"])
    assert db.history(jobs["patient"]) == ["queued", "running", "succeeded"]
    assert_finished_cleanly(db, jobs["hasty"], epochs=LONG_JOB["epochs"], attempts=2)
    assert db.history(jobs["hasty"]) == ["queued", "running", "queued", "running", "succeeded"]
    [handed_back] = [line for line in db.logs(jobs["hasty"]) if "handed back" in line]
    assert handed_back.startswith("database unreachable for ")
    assert handed_back.endswith(" s; handed back, no attempt counted")
    print(f"\nafter a 5 s PostgreSQL outage both jobs finished {took:.1f} s after it came back")
