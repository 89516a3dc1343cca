"""Engine events into the database: metric points in batches, progress on the job row.

``EventWriter`` is the ``on_event`` of a run. It turns each event into metric points, buffers
them, and flushes about every ``metric_flush_interval_s`` or ``metric_flush_points`` points
through ``backend.services.ingest.insert_points`` (the one write path: multi-row INSERT ... ON
CONFLICT (job_id, key, step) DO NOTHING, plus the rollups the API downsamples from), in the same
transaction as the job row's step/latest/heartbeat and one ``JobChange`` progress row. A replayed
step (a run resumed from its checkpoint re-emits what came after it) never duplicates a point.

Before the engine writes a checkpoint at step s, every point up to s is committed: resuming from
that checkpoint re-emits only steps after s, so a point buffered but not yet flushed when a worker
dies would otherwise be lost for good.

A database outage stalls the writes, not the run (worker.outage): the background thread keeps
its batch and tries again, and a flush the training thread waits on (before a checkpoint, or
when the backlog is full) retries with backoff for up to ``db_outage_grace_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from backend.db import get_engine, session_scope
from backend.models import Artifact, Job, JobChange, JobLog, utcnow
from backend.services.ingest import insert_points
from backend.settings import Settings
from pruneboard.status import JobStatus
from worker.outage import Connectivity, is_connection_error, with_retries
from worker.series import (
    LAYER_PREFIX,
    PRETRAINED_PREFIX,
    VALLEY_BARRIER,
    VALLEY_BARRIER_ABOVE_ENDS,
    VALLEY_PREFIX,
    compact_line,
    finite,
    series,
)

log = logging.getLogger(__name__)

class EventWriter:
    """Callable on engine events; ``close()`` writes what is left.

    The training thread only buffers; a background thread writes a batch once
    ``metric_flush_points`` points are waiting or ``metric_flush_interval_s`` has passed, so the
    run never waits on the database. While a batch is being written the next one keeps growing,
    which under a fast stream makes batches larger instead of queueing many small transactions.
    The training thread writes itself only before a checkpoint (see above), at the start, on an
    error, and when the backlog reaches ``_BACKLOG_BATCHES`` batches (back-pressure: a stalled
    database must not grow memory without bound).
    """

    _BACKLOG_BATCHES = 20

    def __init__(self, settings: Settings, job_id: int, *, attempt: int | None = None,
                 link: Connectivity | None = None):
        self.job_id = job_id
        self.attempt = attempt
        self._url = settings.resolved_database_url
        self._link = link or Connectivity()
        self._grace_s = settings.db_outage_grace_s
        self._interval = settings.metric_flush_interval_s
        self._max_points = settings.metric_flush_points
        self._buffer = threading.Condition()  # guards the buffered state below
        self._flush_lock = threading.Lock()  # batches are written in order, one at a time
        self._points: list[tuple] = []
        self._logs: list[tuple[str, str]] = []
        self._artifacts: list[dict[str, Any]] = []
        self._artifacts_written = False
        self._job_values: dict[str, Any] = {}
        self._step: int | None = None
        def stored_latest() -> dict[str, Any] | None:
            with get_engine(self._url).connect() as connection:
                return connection.scalar(select(Job.latest).where(Job.id == job_id))

        # Continue the job's latest values, so a resumed run keeps e.g. test_accuracy.
        stored = with_retries(stored_latest, link=self._link, grace_s=self._grace_s,
                              what=f"reading job {job_id}")
        self._latest: dict[str, Any] = dict(stored or {})
        self._last_flush = time.monotonic()
        self._checkpoint_steps: tuple[int, int] | None = None  # (steps_per_epoch, interval)
        self._closed = False
        self._thread = threading.Thread(target=self._flush_in_background, daemon=True,
                                        name=f"metrics-job-{job_id}")
        self._thread.start()

    def __call__(self, event: dict) -> None:
        kind, step = event["type"], event["step"]
        now = time.time()
        points: list[tuple[str, float]] = []
        scalars: dict[str, Any] = {}
        sync = False
        if kind == "train":
            scalars = series(event)
            points = list(scalars.items())
            points += [(LAYER_PREFIX + layer, value)
                       for layer, value in event.get("layer_group_sparsity", {}).items()]
            sync = self._checkpoint_follows(step, last_event=False)
        elif kind == "eval":
            scalars = series(event)
            points = list(scalars.items())
            sync = self._checkpoint_follows(step, last_event=True)
        elif kind == "valley":
            scalars = {VALLEY_BARRIER: event["barrier"],
                       VALLEY_BARRIER_ABOVE_ENDS: event["barrier_above_ends"]}
            scalars.update({f"{VALLEY_PREFIX}{t:.2f}": loss
                            for t, loss in zip(event["t"], event["train_loss"], strict=True)})
            points = list(scalars.items())
        elif kind == "compact":
            self._add_log("info", compact_line(event))
        elif kind == "compact_error":
            self._add_log("warning", event["message"])
        elif kind == "artifact":
            with self._buffer:
                self._artifacts.append({k: event[k] for k in ("format", "sha256", "bytes")}
                                       | {"name": event["path"]})
        elif kind == "start":
            self._on_start(event)
            # The unpruned model of one's own, measured once before training: the reference line.
            points = [(PRETRAINED_PREFIX + key, value)
                      for key, value in (event.get("pretrained") or {}).items()
                      if isinstance(value, int | float)]
            with self._buffer:  # progress rows written with those points need a step
                self._step = step if self._step is None else self._step
            sync = True
        elif kind == "checkpoint":
            self._add_log("info", f"checkpoint at step {step}")
        elif kind == "log":
            self._add_log(event.get("level", "info"), event["message"])
        elif kind == "error":
            self._add_log("error", event["message"])
            sync = True
        rows = [(key, step, float(value), now) for key, value in points if finite(value)]
        with self._buffer:
            self._points.extend(rows)
            if kind in ("train", "eval", "valley"):
                self._step = step
                self._latest.update({k: v for k, v in scalars.items() if finite(v)})
                if "epoch" in event:
                    self._latest["epoch"] = event["epoch"]
            waiting = len(self._points)
            if waiting >= self._max_points:
                self._buffer.notify()
        if sync or waiting >= self._BACKLOG_BATCHES * self._max_points:
            self.flush()

    def flush(self) -> None:
        """Write everything buffered, in one transaction, and return when it is committed.
        Connection errors are retried with backoff until the database has been unreachable for
        ``db_outage_grace_s`` (then DatabaseUnreachable); on failure the batch goes back to the
        front of the buffer, so the next flush retries it."""
        self._flush(grace_s=self._grace_s)

    def close(self, *, give_up: Callable[[], bool] = lambda: False) -> None:
        """Stop the background thread and write what is left, waiting as long as the database
        is away (until ``give_up()``; raises if that fails)."""
        with self._buffer:
            self._closed = True
            self._buffer.notify()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._flush(grace_s=None, give_up=give_up)

    def _flush(self, *, grace_s: float | None, give_up: Callable[[], bool] = lambda: False,
               once: bool = False) -> None:
        with self._flush_lock:
            with self._buffer:
                points, logs, job_values = self._points, self._logs, self._job_values
                artifacts = self._artifacts
                self._points, self._logs, self._job_values = [], [], {}
                self._artifacts = []
                step, latest = self._step, dict(self._latest)
                self._last_flush = time.monotonic()
            if not (points or logs or job_values or artifacts):
                return

            def write() -> None:
                with session_scope(self._url) as session:
                    self._write(session, points, logs, job_values, step, latest)
                    self._write_artifacts(session, artifacts)

            try:
                if once:
                    _once(write, self._link)
                else:
                    with_retries(write, link=self._link, grace_s=grace_s, give_up=give_up,
                                 what=f"writing metrics of job {self.job_id}")
            except BaseException:
                with self._buffer:
                    self._points[:0] = points
                    self._logs[:0] = logs
                    self._artifacts[:0] = artifacts
                    self._job_values = {**job_values, **self._job_values}
                raise
            if artifacts:
                self._artifacts_written = True  # only once committed: a retry clears again

    def _write(self, session: Session, points: list[tuple], logs: list[tuple[str, str]],
               job_values: dict[str, Any], step: int | None, latest: dict[str, Any]) -> None:
        insert_points(session, self.job_id, points)
        if logs:
            session.execute(insert(JobLog), [{"job_id": self.job_id, "level": level,
                                              "message": message} for level, message in logs])
        values = dict(job_values, heartbeat_at=utcnow())
        if points:
            values.update(step=step, latest=latest)
        condition = [Job.id == self.job_id]
        if self.attempt is not None:
            # Progress of a run that lost the job (see worker.jobs) must not overwrite the row.
            condition += [Job.status == JobStatus.RUNNING, Job.attempt == self.attempt]
        owned = session.execute(update(Job).where(*condition).values(**values)
                                .execution_options(synchronize_session=False)).rowcount
        # Points are the same whichever run writes them; progress rows only come from the owner.
        if points and owned:
            session.execute(insert(JobChange).values(job_id=self.job_id, status=JobStatus.RUNNING,
                                                     step=step, latest=latest))

    def _write_artifacts(self, session: Session, artifacts: list[dict[str, Any]]) -> None:
        if not artifacts:
            return
        # A requeued run exports again: its files replace every earlier attempt's (which may
        # have had other formats), so the first write of this run clears the job's rows.
        clear = delete(Artifact).where(Artifact.job_id == self.job_id)
        if self._artifacts_written:
            clear = clear.where(Artifact.name.in_([a["name"] for a in artifacts]))
        session.execute(clear)
        session.execute(insert(Artifact), [{"job_id": self.job_id, **a} for a in artifacts])

    def _on_start(self, event: dict) -> None:
        with self._buffer:
            self._job_values["total_steps"] = event["total_steps"]
            if "forecast" in event:  # the engine's, from the real weights, replaces the API's
                self._job_values["forecast"] = event["forecast"]
        config = event.get("config", {})
        if config.get("checkpoint_dir"):
            self._checkpoint_steps = (event["steps_per_epoch"],
                                      config.get("checkpoint_interval") or 0)
        where = f"resuming at step {event['step']}" if event["step"] else "from scratch"
        self._add_log("info", f"training {event['total_steps']} steps "
                              f"({event['steps_per_epoch']} per epoch) on {event['device']}, "
                              f"{where}")
        pretrained = event.get("pretrained") or {}
        if "test_accuracy" in pretrained:
            self._add_log("info", f"the model as pushed, unpruned: test accuracy "
                                  f"{100 * pretrained['test_accuracy']:.2f} %")
        warning = (event.get("forecast") or {}).get("warning")
        if warning:
            self._add_log("warning", f"pruning forecast: {warning}")

    def _checkpoint_follows(self, step: int, *, last_event: bool) -> bool:
        """Will the engine save a checkpoint right after this event? At an epoch end the eval
        event comes last, so the train event of that step need not be written on its own."""
        if self._checkpoint_steps is None:
            return False
        per_epoch, interval = self._checkpoint_steps
        if step % per_epoch == 0:
            return last_event
        return bool(interval and step % interval == 0)

    def _add_log(self, level: str, message: str) -> None:
        with self._buffer:
            self._logs.append((level, message))

    def _due(self) -> bool:
        waiting = self._points or self._logs or self._job_values
        return bool(waiting) and (len(self._points) >= self._max_points
                                  or time.monotonic() - self._last_flush >= self._interval)

    def _flush_in_background(self) -> None:
        tick = max(self._interval / 4, 0.01)
        failing = False
        while True:
            with self._buffer:
                if not self._closed and not self._due():
                    self._buffer.wait(tick)
                if self._closed:
                    return
                due = self._due()
            if not due:
                continue
            try:
                # One try: the next round is the retry, and the training thread never waits.
                self._flush(grace_s=None, once=True)
                failing = False
            except Exception as error:  # kept for the next try; close() reports a lasting one
                log.warning("writing metrics of job %s failed, will retry: %s", self.job_id,
                            str(error).splitlines()[0] if str(error) else error,
                            exc_info=not failing)
                failing = True
                time.sleep(self._interval)


def _once(write: Callable[[], None], link: Connectivity) -> None:
    try:
        write()
    except Exception as error:
        if is_connection_error(error):
            link.failed()
        raise
    link.reached()
