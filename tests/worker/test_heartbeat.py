"""The heartbeat and the reaper against a real database, without Celery."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from backend.models import Worker, utcnow
from backend.settings import Settings
from worker.heartbeat import Heartbeat


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, make_db):
    # PostgreSQL: a database of its own, or a worker of another test might reap these jobs.
    name = "sqlite_url" if request.param == "sqlite" else "private_postgres_url"
    return make_db(request.getfixturevalue(name))


def heartbeat(db, resend=lambda job_id: None) -> Heartbeat:
    settings = Settings(database_url=db.url, heartbeat_timeout_s=3, max_attempts=3)
    return Heartbeat(settings, resend=resend, device="cpu")


def stale(seconds: float = 10) -> datetime:
    return utcnow() - timedelta(seconds=seconds)


def naive_utc(moment: datetime) -> datetime:
    # PostgreSQL returns aware datetimes, SQLite naive ones (stored as UTC).
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def test_the_reaper_requeues_fails_or_cancels_jobs_of_lost_workers(db):
    lost = db.create_job(status="running", attempt=1, heartbeat_at=stale(), worker_id="w:1:cpu")
    worn = db.create_job(status="running", attempt=3, heartbeat_at=stale(), worker_id="w:2:cpu")
    cancelled = db.create_job(status="running", attempt=1, heartbeat_at=stale(),
                              cancel_requested=True)
    alive = db.create_job(status="running", attempt=1, heartbeat_at=stale(1))
    queued = db.create_job(status="queued", heartbeat_at=stale())
    statuses_when_sent = []
    beat = heartbeat(db, lambda job_id: statuses_when_sent.append((job_id, db.job(job_id).status)))

    assert beat.reap() == [lost]

    # re-sent only after the commit: a worker taking the message finds the job queued
    assert statuses_when_sent == [(lost, "queued")]
    assert db.job(lost).attempt == 1 and db.job(lost).finished_at is None
    assert "worker w:1:cpu lost during attempt 1 of 3; requeued" in db.logs(lost)[-1]
    job = db.job(worn)
    assert (job.status, job.error) == ("failed", "worker lost 3 times (last: w:2:cpu); giving up")
    assert job.finished_at is not None
    assert db.job(cancelled).status == "cancelled"
    assert [db.job(j).status for j in (alive, queued)] == ["running", "queued"]
    assert db.history(lost)[-1] == "queued" and db.history(worn)[-1] == "failed"
    assert beat.reap() == []  # nothing is reaped twice


def test_two_reapers_never_requeue_the_same_job_twice(db):
    jobs = [db.create_job(status="running", attempt=1, heartbeat_at=stale()) for _ in range(40)]
    sent: list[int] = []
    reapers = [heartbeat(db, sent.append) for _ in range(2)]
    start = threading.Barrier(2)

    def reap(beat: Heartbeat) -> None:
        start.wait()
        beat.reap()

    threads = [threading.Thread(target=reap, args=(beat,)) for beat in reapers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(sent) == jobs


def test_a_beat_registers_the_worker_and_reads_the_cancel_flag(db):
    job_id = db.create_job(status="running", attempt=1, heartbeat_at=stale())
    beat = heartbeat(db)
    beat.set_job(job_id, attempt=1)
    beat.beat()

    with db.engine.connect() as connection:
        worker = connection.execute(select(Worker.__table__)).one()
    assert (worker.id, worker.device, worker.current_job_id) == (beat.worker_id, "cpu", job_id)
    assert worker.id.endswith(":cpu") and worker.gpu_name is None
    assert naive_utc(db.job(job_id).heartbeat_at) > naive_utc(stale(2))
    assert not beat.should_stop()

    db.set(job_id, cancel_requested=True)
    beat.beat()
    assert beat.cancel_requested() and beat.should_stop() and not beat.lost()

    beat.stop()
    with db.engine.connect() as connection:
        assert connection.execute(select(Worker.id)).all() == []


def test_a_worker_whose_job_was_requeued_learns_that_it_lost_it(db):
    job_id = db.create_job(status="running", attempt=1)
    beat = heartbeat(db)
    beat.set_job(job_id, attempt=1)
    db.set(job_id, status="running", attempt=2)  # reaped and claimed by another worker
    beat.beat()
    assert beat.lost() and beat.should_stop() and not beat.cancel_requested()
