"""EventWriter on both databases: idempotent batches, flushing by size, by time and before
checkpoints, and the job row's progress."""

from __future__ import annotations

import time

import pytest

from backend.settings import Settings
from worker.series import LAYER_PREFIX
from worker.writer import EventWriter

LAYERS = {"fc1": 0.25, "fc2": 0.5}


def train_event(step: int, loss: float = 1.0) -> dict:
    return {"type": "train", "step": step, "epoch": 0, "train_loss": loss, "lr": 0.1,
            "threshold": 0.01, "weight_sparsity": 0.1, "group_sparsity": 0.2,
            "remaining_params": 0.9, "remaining_flops": 0.8, "norm_ratio": 0.3,
            "elapsed_s": 1.0, "layer_group_sparsity": LAYERS}


POINTS_PER_TRAIN_EVENT = 8 + len(LAYERS)


def start_event(*, checkpoint_dir: str | None = None, checkpoint_interval: int = 0) -> dict:
    return {"type": "start", "step": 0, "total_steps": 100, "steps_per_epoch": 20,
            "device": "cpu", "config": {"checkpoint_dir": checkpoint_dir,
                                        "checkpoint_interval": checkpoint_interval}}


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, make_db):
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    return make_db(url)


def writer_for(db, job_id: int, *, points: int = 10_000, interval: float = 3600,
               attempt: int | None = 1) -> EventWriter:
    settings = Settings(database_url=db.url, metric_flush_points=points,
                        metric_flush_interval_s=interval)
    return EventWriter(settings, job_id, attempt=attempt)


def test_a_batch_written_twice_is_stored_once(db):
    job_id = db.create_job(status="running", attempt=1)
    for loss in (1.0, 2.0):  # a replay, as after resuming from a checkpoint
        writer = writer_for(db, job_id)
        for step in (5, 10):
            writer(train_event(step, loss))
        writer.close()

    points = db.points(job_id)
    assert len(points) == 2 * POINTS_PER_TRAIN_EVENT
    assert len({(key, step) for key, step, _ in points}) == len(points)
    assert {value for key, _, value in points if key == "train_loss"} == {1.0}  # first one kept


def test_a_full_batch_is_written_without_waiting_for_the_interval(db, wait_for):
    job_id = db.create_job(status="running", attempt=1)
    batch = 3 * POINTS_PER_TRAIN_EVENT
    writer = writer_for(db, job_id, points=batch)  # the interval is an hour
    for step in (1, 2):
        writer(train_event(step))
    time.sleep(0.3)
    assert db.points(job_id) == []
    writer(train_event(3))
    wait_for(lambda: len(db.points(job_id)) == batch, timeout=5, what="the full batch")
    writer(train_event(4))
    writer.close()

    assert len(db.points(job_id)) == 4 * POINTS_PER_TRAIN_EVENT  # the rest at close()
    # the row made by create_job, then one progress row per batch
    assert db.statuses(job_id) == ["running"] * (1 + 2)


def test_points_are_written_after_the_interval_without_further_events(db, wait_for):
    job_id = db.create_job(status="running", attempt=1)
    writer = writer_for(db, job_id, interval=2.0)
    writer(train_event(5))
    assert db.points(job_id) == []  # buffered, not written by the training thread
    wait_for(lambda: db.points(job_id), timeout=10, what="the background flush")
    writer.close()


def test_points_up_to_a_checkpoint_are_stored_before_it_is_written(db, tmp_path):
    job_id = db.create_job(status="running", attempt=1)
    writer = writer_for(db, job_id)
    writer(start_event(checkpoint_dir=str(tmp_path), checkpoint_interval=10))
    writer(train_event(5))
    assert db.points(job_id) == []
    writer(train_event(10))  # the engine saves a checkpoint right after this step's events
    assert {step for _, step, _ in db.points(job_id)} == {5, 10}
    writer(train_event(15))
    writer(train_event(20))  # an epoch end: the eval event follows, then the checkpoint
    assert {step for _, step, _ in db.points(job_id)} == {5, 10}
    writer({"type": "eval", "step": 20, "epoch": 0, "test_loss": 0.5, "test_accuracy": 0.9})
    assert {step for _, step, _ in db.points(job_id)} == {5, 10, 15, 20}
    writer.close()


def test_the_job_row_carries_progress_and_latest_values(db):
    job_id = db.create_job(status="running", attempt=1)
    writer = writer_for(db, job_id)
    writer(start_event())
    writer(train_event(20, loss=0.7))
    writer({"type": "eval", "step": 20, "epoch": 0, "test_loss": 0.5, "test_accuracy": 0.9})
    writer({"type": "checkpoint", "step": 20, "path": "x"})
    writer({"type": "train", "step": 25, "epoch": 1, "train_loss": float("nan"), "lr": 0.1})
    writer.close()

    job = db.job(job_id)
    assert (job.step, job.total_steps) == (25, 100)
    assert job.latest == {"train_loss": 0.7, "lr": 0.1, "threshold": 0.01,
                          "weight_sparsity": 0.1, "group_sparsity": 0.2,
                          "remaining_params": 0.9, "remaining_flops": 0.8, "norm_ratio": 0.3,
                          "test_loss": 0.5, "test_accuracy": 0.9, "epoch": 1}
    keys = {key for key, _, _ in db.points(job_id)}
    assert {LAYER_PREFIX + "fc1", LAYER_PREFIX + "fc2", "test_accuracy"} <= keys
    assert ("train_loss", 25) not in {(k, s) for k, s, _ in db.points(job_id)}  # NaN left out
    logs = db.logs(job_id)
    assert "training 100 steps (20 per epoch) on cpu, from scratch" in logs
    assert "checkpoint at step 20" in logs


def test_a_run_that_lost_its_job_does_not_overwrite_the_job_row(db):
    job_id = db.create_job(status="running", attempt=2)  # the reaper gave it to attempt 2
    writer = writer_for(db, job_id, attempt=1)
    writer(train_event(5))
    writer.close()

    job = db.job(job_id)
    assert (job.step, job.latest) == (0, {})
    assert db.statuses(job_id) == ["running"]  # no progress row from the stale run
    assert len(db.points(job_id)) == POINTS_PER_TRAIN_EVENT  # identical values: harmless
