"""Jobs through real `celery worker` processes: PostgreSQL + Redis, the embedded default
(SQLite + kombu's filesystem broker), cancellation and failures."""

from __future__ import annotations

import pytest

from worker.series import LAYER_PREFIX, TRAIN_KEYS

SMALL_JOB = {"model": "mlp", "mlp_widths": [32, 16], "epochs": 3, "log_interval": 5}
DIGITS_STEPS_PER_EPOCH = 1437 // 64  # 1437 training digits, batch size 64, last batch dropped

# A real divergence, checked empirically: plain SGD with lr 10 and momentum 0.99 on 3x16x16
# synthetic images makes the loss NaN at step 10 (deterministic on the CPU).
DIVERGING_JOB = {"model": "mlp", "mlp_widths": [32, 16], "dataset": "synthetic",
                 "synthetic_shape": [3, 16, 16], "synthetic_size": 512, "method": "sgd",
                 "lr": 10.0, "momentum": 0.99, "epochs": 3, "log_interval": 5}


def test_a_digits_job_runs_to_success_on_postgres_and_redis(pg, pg_worker, enqueue):
    workers, pg_env = pg_worker
    job_id = pg.create_job()
    enqueue(pg_env, job_id)
    job = pg.wait_status(job_id, ("succeeded", "failed"), timeout=90, workers=workers)

    assert job.status == "succeeded", job.error
    total = 3 * DIGITS_STEPS_PER_EPOCH
    assert (job.attempt, job.step, job.total_steps) == (1, total, total)
    assert job.started_at is not None and job.finished_at is not None and job.error is None
    pg.assert_complete_series(job_id, epochs=3, log_interval=5)
    assert job.latest["epoch"] == 2 and 0 <= job.latest["group_sparsity"] <= 1
    assert job.latest["test_accuracy"] == job.summary["test_accuracy"] > 0.5
    assert not any(key.startswith(LAYER_PREFIX) for key in job.latest)
    assert pg.history(job_id) == ["queued", "running", "succeeded"]
    logs = pg.logs(job_id)
    assert "attempt 1 started on" in logs[0] and "cpu" in logs[0]
    assert any(line.startswith("checkpoint at step 66") for line in logs)


def test_the_embedded_default_runs_a_job_on_sqlite_and_the_filesystem_broker(
        sqlite_url, tmp_path, queue_name, workers, enqueue, make_db):
    # No database or broker URL: everything lives under the data folder.
    env = {"PRUNEBOARD_DATABASE_URL": "", "PRUNEBOARD_BROKER_URL": "",
           "PRUNEBOARD_QUEUE_NAME": queue_name, "PRUNEBOARD_DATA_DIR": str(tmp_path)}
    db = make_db(sqlite_url)
    job_id = db.create_job()
    workers.start(env)
    enqueue(env, job_id)
    job = db.wait_status(job_id, ("succeeded", "failed"), timeout=90, workers=workers)

    assert job.status == "succeeded", job.error
    db.assert_complete_series(job_id, epochs=3, log_interval=5)
    assert db.history(job_id) == ["queued", "running", "succeeded"]
    checkpoint = tmp_path / "artifacts" / "jobs" / str(job_id) / "checkpoints" / "last.pt"
    assert checkpoint.is_file()


def test_a_cancelled_running_job_stops_and_keeps_its_metrics(pg, pg_worker, enqueue, wait_for):
    workers, pg_env = pg_worker
    job_id = pg.create_job({**SMALL_JOB, "epochs": 500})
    enqueue(pg_env, job_id)
    pg.wait_status(job_id, ("running",), timeout=60, workers=workers)
    wait_for(lambda: pg.job(job_id).step >= 20, timeout=60, what="metrics of the running job")
    pg.set(job_id, cancel_requested=True)
    job = pg.wait_status(job_id, ("cancelled", "succeeded", "failed"), timeout=30,
                         workers=workers)

    assert job.status == "cancelled" and job.finished_at is not None
    assert job.step < job.total_steps
    points = pg.points(job_id)
    assert {key for key, _, _ in points} >= set(TRAIN_KEYS)
    assert max(step for _, step, _ in points) == job.step
    assert pg.history(job_id) == ["queued", "running", "cancelled"]


def test_a_job_cancelled_while_queued_never_starts(pg, pg_worker, enqueue):
    workers, pg_env = pg_worker
    cancelled = pg.create_job(status="cancelled", cancel_requested=True)
    requested = pg.create_job(cancel_requested=True)  # still 'queued': the API's flag only
    runs = pg.create_job()
    for job_id in (cancelled, requested, runs):
        enqueue(pg_env, job_id)
    # One worker takes the queue in order: once the last job ran, the first two were seen.
    pg.wait_status(runs, ("succeeded",), timeout=90, workers=workers)

    for job_id in (cancelled, requested):
        job = pg.job(job_id)
        assert (job.status, job.attempt, job.started_at) == ("cancelled", 0, None)
        assert pg.points(job_id) == []
    assert pg.history(requested) == ["queued", "cancelled"]
    assert pg.history(cancelled) == ["cancelled"]


@pytest.mark.parametrize("config, reason", [
    (DIVERGING_JOB, "training loss became nan at step 10; lower the learning rate"),
    ({**SMALL_JOB, "dataset": "mnist"}, "invalid config: data_dir: dataset mnist is read from"),
], ids=["nan-loss", "config-error"])
def test_a_failing_job_fails_with_its_reason_and_is_not_retried(pg, pg_worker, enqueue,
                                                                config, reason):
    workers, pg_env = pg_worker
    job_id = pg.create_job(config)
    enqueue(pg_env, job_id)
    job = pg.wait_status(job_id, ("failed", "succeeded"), timeout=90, workers=workers)

    assert job.status == "failed"
    assert job.error.startswith(reason), job.error
    assert job.attempt == 1
    assert pg.history(job_id) == ["queued", "running", "failed"]
    assert any(line.startswith(f"failed: {reason}") for line in pg.logs(job_id))

