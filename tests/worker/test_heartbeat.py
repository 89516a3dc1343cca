"""The heartbeat and the reaper against a real database, without Celery."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from cifar_files import write_cifar10
from mnist_files import mnist_arrays, write_mnist
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from backend.models import Worker, utcnow
from backend.services.workers import live_dataset_folders
from backend.settings import Settings
from worker import heartbeat as heartbeat_module
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


def test_a_beat_reports_the_dataset_folders_of_its_data_roots(db, tmp_path, monkeypatch):
    root = tmp_path / "datasets"
    write_cifar10(root / "cifar", per_batch=2)
    (root / "empty").mkdir()
    settings = Settings(database_url=db.url, data_roots=[root])
    beat = Heartbeat(settings, resend=lambda job_id: None, device="cpu")

    def reported() -> list[dict]:
        with db.engine.connect() as connection:
            return connection.execute(select(Worker.datasets)).scalar_one()

    beat.beat()  # the insert
    cifar = {"dataset": "cifar10", "data_dir": "cifar", "input_shape": [3, 32, 32],
             "num_classes": 10, "train_size": 10}
    assert reported() == [cifar]

    # A folder added later shows up at the next scan, not at every beat.
    write_mnist(root / "mnist", mnist_arrays(train=7), gz=True)
    beat.beat()
    assert reported() == [cifar]
    monkeypatch.setattr(heartbeat_module, "DATASET_SCAN_INTERVAL_S", 0.0)
    beat.beat()  # the update
    assert reported() == [cifar, {"dataset": "mnist", "data_dir": "mnist",
                                  "input_shape": [1, 28, 28], "num_classes": 10,
                                  "train_size": 7}]
    beat.stop()


def folder(dataset: str, data_dir: str, train_size: int = 100) -> dict:
    return {"dataset": dataset, "data_dir": data_dir, "input_shape": [3, 32, 32],
            "num_classes": 10, "train_size": train_size}


def test_live_dataset_folders_are_those_of_live_workers_each_once(db):
    rows = [("b:1:cpu", utcnow(), [folder("cifar10", "c10", 5), folder("cifar10", "big")]),
            ("a:1:cpu", utcnow(), [folder("cifar10", "c10", 9)]),  # first by id: its facts win
            ("c:1:cpu", stale(10), [folder("cifar100", "gone")]),  # older than the timeout
            ("d:1:cpu", utcnow(), None)]                           # an older worker's row
    with db.engine.begin() as connection:
        for worker_id, at, datasets in rows:
            connection.execute(insert(Worker).values(
                id=worker_id, host="h", device="cpu", started_at=at, heartbeat_at=at,
                datasets=datasets))
    with Session(db.engine) as session:
        found = live_dataset_folders(session, Settings(database_url=db.url,
                                                       heartbeat_timeout_s=3))
    assert found == [folder("cifar10", "c10", 9), folder("cifar10", "big")]
