"""A job whose worker is lost mid-run: killed (-9), it is requeued by the reaper of another
worker once its heartbeat is stale, which counts one worker loss; stopped (SIGTERM), the worker
hands the job back at once, which counts none.
Either way the next attempt, on the other worker, resumes from the checkpoint and every metric
step is stored exactly once.

Each test has a database of its own: any live worker reaps lost jobs of its whole database.
"""

from __future__ import annotations

import signal

# Long enough that the worker is stopped mid-run (seconds on one core, where the stop comes
# about half a second after step 50), short enough that the second attempt finishes quickly.
# Checkpoints at every epoch end (22 steps) and every 50 steps.
RECOVERY_JOB = {"model": "mlp", "mlp_widths": [32, 16], "epochs": 60, "log_interval": 5,
                "checkpoint_interval": 50}


def run_and_interrupt(pg, pg_env, workers, enqueue, wait_for, how: signal.Signals) -> int:
    """Start two workers on one queue, run RECOVERY_JOB, and stop the one that took it with
    ``how`` once metrics and a checkpoint exist; the other one must then finish the job.
    Returns the job id. (Both start at once: each start costs seconds of imports.)"""
    job_id = pg.create_job(RECOVERY_JOB)
    pair = [workers.start(pg_env) for _ in range(2)]
    enqueue(pg_env, job_id)
    wait_for(lambda: pg.job(job_id).step >= 50
             and any(line.startswith("checkpoint at step") for line in pg.logs(job_id)),
             timeout=120, what="metrics and a checkpoint of the first attempt",
             details=workers.output)
    pid = int(pg.job(job_id).worker_id.rsplit(":", 2)[1])  # host:pid:device
    [running] = [process for process in pair if process.pid == pid]
    running.send_signal(how)
    code = running.wait(timeout=30)
    assert code == (-signal.SIGKILL if how == signal.SIGKILL else 0), workers.output()
    job = pg.job(job_id)
    assert job.step < job.total_steps, "the job finished before its worker was stopped"
    return job_id


def test_a_job_whose_worker_is_killed_resumes_on_another_worker_without_gaps(
        private_pg, private_pg_env, workers, enqueue, wait_for):
    pg = private_pg
    job_id = run_and_interrupt(pg, private_pg_env, workers, enqueue, wait_for, signal.SIGKILL)
    # Nobody tells the database; the other worker's reaper finds the heartbeat stale (3 s
    # here), requeues the job and re-sends its task.
    job = pg.wait_status(job_id, ("succeeded", "failed"), timeout=120, workers=workers)

    assert job.status == "succeeded", job.error
    assert (job.attempt, job.worker_losses) == (2, 1)  # a worker that is gone counts a loss
    pg.assert_complete_series(job_id, epochs=RECOVERY_JOB["epochs"], log_interval=5)
    pg.assert_points_once(job_id)
    assert pg.history(job_id) == ["queued", "running", "queued", "running", "succeeded"]
    logs = pg.logs(job_id)
    assert any(line.endswith(" lost (loss 1 of 3 allowed); requeued from its last checkpoint")
               for line in logs), logs
    resumed = [line for line in logs if "resuming at step" in line]
    assert len(resumed) == 1 and not resumed[0].endswith("at step 0"), "\n".join(logs)


def test_a_job_whose_worker_is_stopped_is_handed_back_at_once(
        private_pg, private_pg_env, workers, enqueue, wait_for):
    # SIGTERM is Celery's warm shutdown, which would wait for the whole run; the task instead
    # stops at the next step and requeues the job from its checkpoint, with no timeout to wait.
    pg = private_pg
    job_id = run_and_interrupt(pg, private_pg_env, workers, enqueue, wait_for, signal.SIGTERM)
    job = pg.wait_status(job_id, ("succeeded", "failed"), timeout=120, workers=workers)

    assert job.status == "succeeded", job.error
    assert (job.attempt, job.worker_losses) == (2, 0)  # handed back: no loss counted
    pg.assert_complete_series(job_id, epochs=RECOVERY_JOB["epochs"], log_interval=5)
    pg.assert_points_once(job_id)
    assert pg.history(job_id) == ["queued", "running", "queued", "running", "succeeded"]
    logs = pg.logs(job_id)
    assert any("shutting down; requeued from the last checkpoint" in line for line in logs)
    assert not any(" lost" in line for line in logs), logs
