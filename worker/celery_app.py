"""The Celery app: broker settings, the ``pruneboard.run_job`` and ``pruneboard.run_analysis``
tasks, and the heartbeat's lifecycle.

The broker only carries "run job N" (JSON, no result backend). ``task_acks_late`` with a prefetch
of one means a message is acknowledged only when its job ended, and a worker never holds a second
job's message while it trains.
"""

from __future__ import annotations

import os
import threading

from celery import Celery, bootsteps

from backend.queue import INSPECT_MODEL_TASK, RUN_ANALYSIS_TASK, RUN_JOB_TASK, broker_options
from backend.settings import Settings
from worker import analyses, pushed_models, tasks
from worker.heartbeat import Heartbeat


class PruneboardCelery(Celery):
    settings: Settings

    def heartbeat(self) -> Heartbeat:
        """This process's heartbeat, created on first use. Keyed by pid: a forked child (a prefork
        pool) must not reuse its parent's, whose thread did not survive the fork."""
        with _heartbeat_lock:
            pid, beat = getattr(self, "_heartbeat_of_pid", (None, None))
            if pid != os.getpid() or beat is None:
                # Sends through backend.queue, by task name, like the API: the same message
                # whoever sends it, with the producer's short timeouts.
                beat = Heartbeat(self.settings)
                self._heartbeat_of_pid = (os.getpid(), beat)
            return beat


_heartbeat_lock = threading.Lock()


class HeartbeatStep(bootsteps.StartStopStep):
    """Runs the heartbeat for the worker's whole life, not only while a task runs, so an idle
    worker is listed and reaps jobs lost by others (and its own, after a restart) at once.

    A bootstep rather than the global worker_ready/worker_shutdown signals: it belongs to this app
    only, and with the solo pool it runs in the very process that runs the tasks.
    """

    def start(self, worker) -> None:
        worker.app.heartbeat().start()

    def stop(self, worker) -> None:
        worker.app.heartbeat().stop()


def make_celery(settings: Settings) -> PruneboardCelery:
    broker = settings.resolved_broker_url
    app = PruneboardCelery("pruneboard", broker=broker, set_as_current=False)
    app.settings = settings
    app.conf.update(
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_default_queue=settings.queue_name,
        task_acks_late=True,
        # One job at a time per process (one process per GPU). The prefetch count is
        # concurrency x multiplier, so both must be 1 or a busy worker would hold a second job.
        worker_concurrency=1,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        # A lost broker connection cannot interrupt a solo-pool task anyway; the heartbeat
        # scheme recovers jobs of workers that went away (and this silences Celery's warning).
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )

    @app.task(name=RUN_JOB_TASK, ignore_result=True, acks_late=True)
    def run_job(job_id: int) -> str:
        beat = app.heartbeat()
        beat.start()  # already running under the solo pool; a prefork child starts its own
        return tasks.run_job(int(job_id), settings=settings, beat=beat)

    @app.task(name=RUN_ANALYSIS_TASK, ignore_result=True, acks_late=True)
    def run_analysis(analysis_id: int) -> str:
        beat = app.heartbeat()
        beat.start()
        return analyses.run_analysis(int(analysis_id), settings=settings, beat=beat)

    @app.task(name=INSPECT_MODEL_TASK, ignore_result=True, acks_late=True)
    def inspect_model(version_id: int) -> str:
        beat = app.heartbeat()
        beat.start()
        return pushed_models.inspect_model(int(version_id), settings=settings, beat=beat)

    app.steps["worker"].add(HeartbeatStep)
    return app
