"""worker.tasks.run_job in this process, on SQLite: the outcomes that real runs here cannot
produce (no GPU for an out-of-memory error), with the engine replaced at that boundary only."""

from __future__ import annotations

import pytest
import torch

from backend.settings import Settings
from pruning import TrainingStopped
from worker import tasks
from worker.heartbeat import Heartbeat
from worker.outage import DatabaseUnreachable

SMALL_JOB = {"model": "mlp", "mlp_widths": [32, 16], "epochs": 3, "log_interval": 5}


class Runner:
    """Runs the task body as a worker process would, remembering what it sent."""

    def __init__(self, settings: Settings, monkeypatch):
        self.settings = settings
        self.sent: list[int] = []
        self.beat = Heartbeat(settings, send=self._send, device="cpu")
        # What the task sends after its commits (a hand-back, a new analysis) goes here too.
        dispatch_now = tasks.dispatch_now
        monkeypatch.setattr(tasks, "dispatch_now", lambda settings, messages: dispatch_now(
            settings, messages, send=self._send))

    def _send(self, message) -> None:
        self.sent.append(message.row_id)

    def __call__(self, job_id: int) -> str:
        return tasks.run_job(job_id, settings=self.settings, beat=self.beat)


@pytest.fixture
def run(sqlite_url, tmp_path, monkeypatch) -> Runner:
    return Runner(Settings(database_url=sqlite_url, data_dir=tmp_path), monkeypatch)


@pytest.fixture
def db(sqlite_url, make_db):
    return make_db(sqlite_url)


def fail_with(monkeypatch, error: BaseException) -> None:
    def train(config, on_event, **_):
        on_event({"type": "start", "step": 0, "total_steps": 10, "steps_per_epoch": 5,
                  "device": "cuda", "config": config.to_dict()})
        raise error

    monkeypatch.setattr(tasks, "train", train)


def test_cuda_out_of_memory_fails_the_job_with_the_reason(monkeypatch, run, db):
    fail_with(monkeypatch, torch.cuda.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB\nmore details"))
    job_id = db.create_job()
    assert run(job_id) == "failed"

    job = db.job(job_id)
    assert job.status == "failed" and job.attempt == 1
    assert job.error == ("CUDA out of memory on cpu: CUDA out of memory. Tried to allocate "
                         "2.00 GiB; lower batch_size or use a smaller model")
    assert run(job_id) == "skipped"  # a redelivered message does not retry it


def test_an_unexpected_error_fails_the_job_with_its_traceback_in_the_log(monkeypatch, run, db):
    fail_with(monkeypatch, KeyError("boom"))
    job_id = db.create_job()
    assert run(job_id) == "failed"

    assert db.job(job_id).error == "KeyError: 'boom'"
    assert "Traceback (most recent call last)" in db.logs(job_id)[-1]


def test_a_run_whose_job_was_taken_over_writes_no_outcome(monkeypatch, run, db):
    def train(config, on_event, *, should_stop, **_):
        db.set(job_id, attempt=2)  # the reapers requeued it and another worker claimed it
        run.beat.beat()
        assert should_stop()
        raise TrainingStopped("stopped on request after step 1")

    monkeypatch.setattr(tasks, "train", train)
    job_id = db.create_job()
    assert run(job_id) == "lost"

    job = db.job(job_id)
    assert (job.status, job.attempt, job.finished_at) == ("running", 2, None)
    assert run.sent == []


def test_a_job_that_is_not_queued_is_left_alone(run, db):
    job_id = db.create_job(status="running", attempt=1, worker_id="elsewhere:1:cpu")
    assert run(job_id) == "skipped"
    assert db.job(job_id).worker_id == "elsewhere:1:cpu"


def test_a_run_whose_database_stayed_away_past_the_grace_is_handed_back_uncounted(
        monkeypatch, run, db):
    def train(config, on_event, **_):
        on_event({"type": "start", "step": 0, "total_steps": 10, "steps_per_epoch": 5,
                  "device": "cpu", "config": config.to_dict()})
        raise DatabaseUnreachable(312.4)  # what a flush raises past db_outage_grace_s

    monkeypatch.setattr(tasks, "train", train)
    job_id = db.create_job()
    assert run(job_id) == "queued"

    job = db.job(job_id)
    assert (job.status, job.attempt, job.worker_losses) == ("queued", 1, 0)
    assert db.logs(job_id)[-1] == ("database unreachable for 312 s; handed back, no attempt "
                                   "counted")
    assert db.history(job_id) == ["queued", "running", "queued"]
    assert run.sent == [job_id]  # sent again after the commit
    assert job.dispatched_at is not None


def test_a_claim_whose_commit_went_through_unseen_is_taken_on(run, db):
    # The connection broke after the claim's COMMIT reached the server; the retried claim
    # finds the job running under this very process and runs it, not a stale copy of it.
    job_id = db.create_job({**SMALL_JOB, "epochs": 1}, status="running", attempt=1,
                           worker_id=run.beat.worker_id)
    assert run(job_id) == "succeeded"
    assert db.job(job_id).attempt == 1


def test_failure_messages_name_no_data_root_or_artifact_path(tmp_path):
    from backend.settings import Settings
    from worker.tasks import without_server_paths

    root = tmp_path / "roots" / "team"
    settings = Settings(data_dir=tmp_path, data_roots=[root])
    text = (f"invalid config: data_dir: {root}/c10/cifar-10-batches-py/test_batch: not a "
            f"readable CIFAR pickle; checkpoints in {tmp_path}/artifacts/jobs/3")
    cleaned = without_server_paths(text, settings)
    assert str(tmp_path) not in cleaned
    assert cleaned == ("invalid config: data_dir: <data root>/c10/cifar-10-batches-py/"
                       "test_batch: not a readable CIFAR pickle; checkpoints in "
                       "<artifacts>/jobs/3")
