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
from worker.outage import Connectivity


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, make_db):
    # PostgreSQL: a database of its own, or a worker of another test might reap these jobs.
    name = "sqlite_url" if request.param == "sqlite" else "private_postgres_url"
    return make_db(request.getfixturevalue(name))


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def heartbeat(db, send=lambda message: None, *, settled: bool = True) -> Heartbeat:
    """A heartbeat whose process has (``settled``) been reaching the database for longer than
    the heartbeat timeout, so its reaper judges heartbeats."""
    settings = Settings(database_url=db.url, heartbeat_timeout_s=3, max_attempts=3)
    clock = Clock()
    link = Connectivity(clock)
    if settled:
        link.reached()
        clock.now += 3
    beat = Heartbeat(settings, send=send, device="cpu", link=link)
    beat.clock = clock
    return beat


def stale(seconds: float = 10) -> datetime:
    return utcnow() - timedelta(seconds=seconds)


def naive_utc(moment: datetime) -> datetime:
    # PostgreSQL returns aware datetimes, SQLite naive ones (stored as UTC).
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def test_the_reaper_requeues_fails_or_cancels_jobs_of_lost_workers(db):
    lost = db.create_job(status="running", attempt=1, heartbeat_at=stale(), worker_id="w:1:cpu")
    worn = db.create_job(status="running", attempt=3, worker_losses=2, heartbeat_at=stale(),
                         worker_id="w:2:cpu")
    cancelled = db.create_job(status="running", attempt=1, heartbeat_at=stale(),
                              cancel_requested=True)
    alive = db.create_job(status="running", attempt=1, heartbeat_at=stale(1))
    queued = db.create_job(status="queued", heartbeat_at=stale())
    statuses_when_sent = []
    beat = heartbeat(db, lambda message: statuses_when_sent.append(
        (message.kind, message.row_id, db.job(message.row_id).status)))

    assert beat.reap() == [lost]

    # re-sent only after the commit: a worker taking the message finds the job queued
    assert statuses_when_sent == [("job", lost, "queued")]
    job = db.job(lost)
    assert (job.attempt, job.worker_losses, job.finished_at) == (1, 1, None)
    assert job.dispatched_at is not None  # sent, so no dispatcher sends it again
    assert db.logs(lost)[-1] == ("worker w:1:cpu lost (loss 1 of 3 allowed); requeued from its "
                                 "last checkpoint")
    job = db.job(worn)
    assert (job.status, job.error) == ("failed",
                                       "worker w:2:cpu lost (loss 3 of 3 allowed); giving up")
    assert job.finished_at is not None and job.worker_losses == 3
    assert db.job(cancelled).status == "cancelled"
    assert [db.job(j).status for j in (alive, queued)] == ["running", "queued"]
    assert db.history(lost)[-1] == "queued" and db.history(worn)[-1] == "failed"
    assert beat.reap() == []  # nothing is reaped twice


def test_two_reapers_never_requeue_the_same_job_twice(db):
    jobs = [db.create_job(status="running", attempt=1, heartbeat_at=stale()) for _ in range(40)]
    sent: list[int] = []
    reapers = [heartbeat(db, lambda message: sent.append(message.row_id)) for _ in range(2)]
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
    assert {db.job(job_id).worker_losses for job_id in jobs} == {1}  # each counted once


def test_a_reaper_judges_heartbeats_only_after_reaching_the_database_for_the_timeout(db):
    # After an outage every heartbeat is old (nobody could write one): a reaper that only just
    # got through again must give the live workers time to beat before it calls them lost.
    job_id = db.create_job(status="running", attempt=1, heartbeat_at=stale(), worker_id="w:1:cpu")
    beat = heartbeat(db, settled=False)
    beat.beat()
    beat.link.reached()
    beat.clock.now += 2.9
    assert beat.reap() == [] and db.job(job_id).status == "running"

    beat.link.failed()  # another blip: the count starts over
    beat.link.reached()
    beat.clock.now += 2.9
    assert beat.reap() == []

    beat.clock.now += 0.2
    assert beat.reap() == [job_id]
    assert db.job(job_id).worker_losses == 1


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
    beat = Heartbeat(settings, send=lambda message: None, device="cpu")

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


def test_the_heartbeat_sends_the_messages_the_outbox_holds(db):
    pending = db.create_job(dispatched_at=None)  # committed queued, its message not sent yet
    sent = []
    beat = heartbeat(db, lambda message: sent.append(message.row_id))
    assert beat.dispatch() == 1 and sent == [pending]
    assert db.job(pending).dispatched_at is not None
    db.set(pending, dispatched_at=None)
    assert beat.dispatch() == 0  # at most every dispatch_interval_s
