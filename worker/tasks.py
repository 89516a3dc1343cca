"""The one task, ``pruneboard.run_job(job_id)``: claim the job, run the engine, record the outcome.

The message carries only the id; the config, status and cancel flag are read from the database,
so a redelivered or duplicated message is harmless: the claim succeeds only on a queued job.
Every outcome is written in one transaction with its history rows, and nothing is left 'running'
when the task returns. A database outage is waited out (worker.outage): writes are retried, and
a run whose database stays away past ``db_outage_grace_s`` stops and hands its job back once it
can write again, counting no worker loss.
"""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from celery.exceptions import Reject
from sqlalchemy.orm import Session

from backend.db import session_scope
from backend.models import Job
from backend.queue import dispatch_now
from backend.services.analyses import create_analysis
from backend.services.artifacts import export_dir
from backend.services.dispatch import Message
from backend.settings import Settings
from pruneboard.status import JobStatus
from pruning import ConfigError, TrainConfig, TrainingError, TrainingStopped, train
from pruning.checkpoint import CheckpointError, checkpoint_path
from pruning.data import DatasetError, resolve_data_dir
from pruning.user_models import ModelFileError
from worker.heartbeat import Heartbeat
from worker.jobs import Claim, cancel_queued_job, claim_job, finish_job, requeue_job
from worker.outage import DatabaseUnreachable, with_retries
from worker.pushed_models import job_model
from worker.writer import EventWriter

log = logging.getLogger(__name__)
T = TypeVar("T")


def run_job(job_id: int, *, settings: Settings, beat: Heartbeat) -> str:
    """Run one job to its end; returns the status it ended in ('skipped' when not claimed)."""
    url = settings.resolved_database_url
    if worker_shutting_down():
        # A stopping worker would claim the job only to hand it back at once: put the message
        # back untouched for the next worker instead.
        raise Reject(f"worker shutting down; job {job_id} left for the next worker",
                     requeue=True)

    def take() -> tuple[Claim | None, bool]:
        with session_scope(url) as session:
            claim = claim_job(session, job_id, beat.worker_id)
            return claim, claim is None and cancel_queued_job(session, job_id)

    # Past the grace this raises: the message is acknowledged, the job stays queued, and the
    # dispatchers send it again once a worker sits idle.
    claim, cancelled = with_retries(take, link=beat.link, grace_s=settings.db_outage_grace_s,
                                    what=f"claiming job {job_id}")
    if claim is None:
        log.info("job %s not claimed (%s)", job_id,
                 "cancelled before it started" if cancelled else "not queued")
        return JobStatus.CANCELLED if cancelled else "skipped"
    beat.set_job(job_id, claim.attempt)
    try:
        return _run_claimed(job_id, claim.attempt, claim.config, settings, beat)
    finally:
        beat.clear_job()


def job_config(values: dict[str, Any], settings: Settings, job_id: int,
               device: str) -> TrainConfig:
    """The job's config with what only the worker decides: where checkpoints and the exported
    model go (never a path from the user), the device, and where its data folder is: the job
    names a folder, which is looked up under this worker's data roots."""
    values = dict(values)
    values["checkpoint_dir"] = str(settings.resolved_artifact_dir / "jobs" / str(job_id)
                                   / "checkpoints")
    values["export_dir"] = str(export_dir(settings.resolved_artifact_dir, job_id))
    values["device"] = device
    if values.get("data_dir"):
        try:
            path = resolve_data_dir(values["data_dir"], settings.resolved_data_roots)
        except DatasetError as error:
            # The API accepted the name from another worker's report, or the folder went away.
            raise ConfigError.single("data_dir", str(error)) from None
        values["data_dir"] = str(path)
    return TrainConfig.from_dict(values)


def _run_claimed(job_id: int, attempt: int, values: dict[str, Any], settings: Settings,
                 beat: Heartbeat) -> str:
    url = settings.resolved_database_url
    grace = settings.db_outage_grace_s
    outage_s: float | None = None  # set when the run stops because the database is away

    def finish(status: JobStatus, message: str, **fields) -> str:
        def write() -> bool:
            with session_scope(url) as session:
                return finish_job(session, job_id, attempt, status, message, **fields)

        # The outcome is known and must be stored: waited for as long as the database is away.
        owned = _until_written(write, beat, f"recording job {job_id} {status}")
        return status if owned else "lost"  # None (shutting down first) is "lost" too

    def stop_requested() -> bool:
        nonlocal outage_s
        if beat.link.down_for() >= grace:
            outage_s = beat.link.down_for()
            return True
        return beat.should_stop() or worker_shutting_down()

    writer = None
    try:
        config = job_config(values, settings, job_id, beat.device)
        checkpoint = checkpoint_path(config.checkpoint_dir)
        writer = EventWriter(settings, job_id, attempt=attempt, link=beat.link)
        pushed = job_model(settings, config.model, config.model_version)
        summary = train(config, writer, should_stop=stop_requested,
                        resume_from=checkpoint if checkpoint.is_file() else None,
                        model=pushed.module if pushed is not None else None)
    except (TrainingStopped, DatabaseUnreachable) as stopped:
        if isinstance(stopped, DatabaseUnreachable):
            outage_s = stopped.seconds
        if not _close(writer, job_id):
            return "lost"
        if beat.lost():
            log.warning("job %s was requeued while this worker ran it; dropped", job_id)
            return "lost"
        if outage_s is not None:
            return _hand_back(settings, job_id, attempt, beat,
                              f"database unreachable for {outage_s:.0f} s; handed back, no "
                              f"attempt counted", wait=True)
        if beat.cancel_requested():
            return finish(JobStatus.CANCELLED, f"cancelled on request ({stopped})")
        return _hand_back(settings, job_id, attempt, beat,
                          f"worker {beat.worker_id} shutting down; requeued from the last "
                          f"checkpoint")
    except Exception as error:
        # Not retried: a deterministic failure would fail again. Returning normally lets
        # acks_late acknowledge the message.
        message = _failure_message(error, device=beat.device)
        log.error("job %s failed: %s", job_id, message, exc_info=not _expected(error))
        if not _close(writer, job_id):
            return "lost"
        details = "" if _expected(error) else "\n" + traceback.format_exc()
        message, details = (without_server_paths(text, settings) for text in (message, details))
        return finish(JobStatus.FAILED, f"failed: {message}{details}", error=message, level="error")
    except BaseException:
        # Cold shutdown (WorkerTerminate, SystemExit, KeyboardInterrupt) inside the run.
        _close(writer, job_id)
        _hand_back(settings, job_id, attempt, beat,
                   f"worker {beat.worker_id} shutting down; requeued from the last checkpoint")
        raise
    if not _close(writer, job_id):
        return "lost"
    kinds = list(config.analyses) if config.reference != "none" else []

    def succeed() -> tuple[bool, int | None]:
        with session_scope(url) as session:
            owned = finish_job(session, job_id, attempt, JobStatus.SUCCEEDED, "succeeded",
                               summary=json_safe(summary))
            # Queued in the same transaction: whoever sees the job succeeded sees its analysis.
            return owned, (_queue_analysis(session, job_id, kinds) if owned and kinds else None)

    owned, analysis_id = _until_written(succeed, beat, f"recording job {job_id} succeeded") or (
        False, None)
    if analysis_id is not None:
        dispatch_now(settings, [Message("analysis", analysis_id)])  # else the dispatchers
    return JobStatus.SUCCEEDED if owned else "lost"


def _until_written(write: Callable[[], T], beat: Heartbeat, what: str) -> T | None:
    """``write()``, retried for as long as the database is away; None when the worker shuts
    down first (the job's heartbeat then goes stale and the reapers recover it)."""
    try:
        return with_retries(write, link=beat.link, grace_s=None, what=what,
                            give_up=worker_shutting_down)
    except DatabaseUnreachable as error:
        log.error("%s: gave up, the worker is shutting down (%s)", what, error)
        return None


def _queue_analysis(session: Session, job_id: int, kinds: list[str]) -> int:
    """A job with a twin gets its loss-valley analysis as soon as it succeeds."""
    job = session.get(Job, job_id, populate_existing=True)
    return create_analysis(session, job, reference=None, options={"kinds": kinds}).id


def _hand_back(settings: Settings, job_id: int, attempt: int, beat: Heartbeat, message: str, *,
               wait: bool = False) -> str:
    """Requeue the job from its last checkpoint now, counting no worker loss, instead of
    leaving it to the reapers: the worker is shutting down, or (``wait``: retried for as long
    as the database is away) the database was unreachable past the grace."""
    def requeue() -> bool:
        with session_scope(settings.resolved_database_url) as session:
            return requeue_job(session, job_id, attempt, message)

    try:
        if wait:
            owned = bool(_until_written(requeue, beat, f"handing job {job_id} back"))
        else:
            owned = with_retries(requeue, link=beat.link, grace_s=settings.db_outage_grace_s,
                                 what=f"handing job {job_id} back")
    except Exception:
        log.exception("could not requeue job %s; the reapers will", job_id)
        return "lost"
    if owned:
        dispatch_now(settings, [Message("job", job_id)])  # else the dispatchers, later
    return JobStatus.QUEUED if owned else "lost"


def _close(writer: EventWriter | None, job_id: int) -> bool:
    """Write the run's last metrics, for as long as the database is away."""
    if writer is None:
        return True
    try:
        writer.close(give_up=worker_shutting_down)
    except Exception:
        log.exception("could not write the last metrics of job %s; the reapers will requeue it",
                      job_id)
        return False
    return True


def worker_shutting_down() -> bool:
    # Celery's warm shutdown (SIGTERM, first Ctrl-C) sets this flag and otherwise waits for the
    # running task to finish, which for a training job may be hours away.
    from celery.worker import state

    return any(flag is not None and flag is not False
               for flag in (state.should_stop, state.should_terminate))


def _expected(error: Exception) -> bool:
    return isinstance(error, ConfigError | CheckpointError | TrainingError | ModelFileError
                      | torch.cuda.OutOfMemoryError)


def without_server_paths(text: str, settings: Settings) -> str:
    """``text`` with this worker's data roots and artifact folder named, not spelled out: every
    reader of the job sees its error, and a path would tell them what exists on this host."""
    places = [(root, "<data root>") for root in settings.resolved_data_roots]
    places.append((settings.resolved_artifact_dir, "<artifacts>"))
    for path, name in sorted(places, key=lambda place: -len(str(place[0]))):
        text = text.replace(str(path), name)
    return text


def _failure_message(error: Exception, *, device: str) -> str:
    if isinstance(error, ConfigError):
        return f"invalid config: {error}"
    if isinstance(error, CheckpointError):
        return f"cannot resume from the last checkpoint: {error}"
    if isinstance(error, TrainingError | ModelFileError):
        return str(error)
    if isinstance(error, torch.cuda.OutOfMemoryError):
        first_line = str(error).splitlines()[0] if str(error) else ""
        return (f"CUDA out of memory on {device}: {first_line}; lower batch_size or use "
                f"a smaller model")
    return f"{type(error).__name__}: {error}"


def json_safe(value: Any) -> Any:
    # JSON has no NaN/Infinity, and PostgreSQL rejects them in JSON columns.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
