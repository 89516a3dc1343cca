"""Sending "run job N" (or "run analysis N") to the workers, by task name: the API never imports
the worker code."""

from __future__ import annotations

from functools import lru_cache

from celery import Celery

from backend.settings import Settings

RUN_JOB_TASK = "pruneboard.run_job"
RUN_ANALYSIS_TASK = "pruneboard.run_analysis"


def broker_options(settings: Settings) -> dict:
    """Broker settings shared by the API's producer and the workers."""
    url = settings.resolved_broker_url
    if url.startswith("filesystem"):
        # Producer and consumer share one folder: what one writes out the other reads in.
        queue = settings.broker_dir / "queue"
        control = settings.broker_dir / "control"
        for folder in (queue, control):
            folder.mkdir(parents=True, exist_ok=True)
        return {"data_folder_in": str(queue), "data_folder_out": str(queue),
                "control_folder": str(control)}
    if url.startswith(("redis://", "rediss://", "redis+socket://", "sentinel://")):
        return {"visibility_timeout": settings.visibility_timeout_s}
    return {}


@lru_cache(maxsize=4)
def _producer(broker_url: str, options_key: tuple) -> Celery:
    app = Celery("pruneboard-api", broker=broker_url)
    app.conf.broker_transport_options = dict(options_key)
    app.conf.broker_connection_retry_on_startup = True
    return app


def enqueue_job(settings: Settings, job_id: int) -> None:
    """Call only after the job's row is committed, or a fast worker may not find it."""
    _send(settings, RUN_JOB_TASK, job_id)


def enqueue_analysis(settings: Settings, analysis_id: int) -> None:
    """Call only after the analysis row is committed."""
    _send(settings, RUN_ANALYSIS_TASK, analysis_id)


def _send(settings: Settings, task: str, row_id: int) -> None:
    options = broker_options(settings)
    producer = _producer(settings.resolved_broker_url, tuple(sorted(options.items())))
    producer.send_task(task, args=[row_id], queue=settings.queue_name)
