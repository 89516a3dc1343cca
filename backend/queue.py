"""Sending "run job N" (or "run analysis N") to the workers, by task name (the API never imports
the worker code), through the outbox of backend.services.dispatch.

``dispatch_now`` is called right after the commit that queued rows: it sends their messages and
marks them sent, or leaves them pending when the broker is down; a request never fails for that.
``dispatch_due`` sends whatever is pending (or evidently lost) and is run every
``dispatch_interval_s`` by the API (``DispatchLoop``) and by every worker's heartbeat thread, so
the embedded ``pruneboard up`` and a fleet of worker hosts both recover. Sends give up after
``SEND_TIMEOUT_S``: a broker that is down (or hangs) costs a request at most that long, and after
one failure requests skip the send for ``dispatch_interval_s`` and leave it to the dispatchers.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

from celery import Celery
from kombu import Connection

from backend.db import session_scope
from backend.services.dispatch import Message, due_messages, mark_dispatched
from backend.settings import Settings

log = logging.getLogger(__name__)

RUN_JOB_TASK = "pruneboard.run_job"
RUN_ANALYSIS_TASK = "pruneboard.run_analysis"
INSPECT_MODEL_TASK = "pruneboard.inspect_model"
TASKS = {"job": RUN_JOB_TASK, "analysis": RUN_ANALYSIS_TASK, "model": INSPECT_MODEL_TASK}
# Connecting, and waiting for the broker's answer: a healthy Redis answers in a millisecond.
SEND_TIMEOUT_S = 1.0

Sender = Callable[[Message], None]


def broker_options(settings: Settings) -> dict:
    """Broker settings shared by the API's producer and the workers."""
    url = settings.resolved_broker_url
    if url.startswith("filesystem"):
        # Producer and consumer share one folder: what one writes out the other reads in.
        queue, control = _broker_folders(settings)
        for folder in (queue, control):
            folder.mkdir(parents=True, exist_ok=True)
        return {"data_folder_in": str(queue), "data_folder_out": str(queue),
                "control_folder": str(control)}
    if _is_redis(url):
        return {"visibility_timeout": settings.visibility_timeout_s}
    return {}


def _broker_folders(settings: Settings) -> tuple[Path, Path]:
    return settings.broker_dir / "queue", settings.broker_dir / "control"


def _is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "redis+socket://", "sentinel://"))


def _producer_options(settings: Settings) -> dict:
    options = broker_options(settings)
    if _is_redis(settings.resolved_broker_url):
        # Not in broker_options: a consumer's blocking read must not time out this early, and
        # a consumer retries its connection, where a send gives up at once (max_retries 0:
        # kombu would otherwise sleep 2 s before its first retry) and leaves it to the outbox.
        options.update(socket_connect_timeout=SEND_TIMEOUT_S, socket_timeout=SEND_TIMEOUT_S,
                       max_retries=0)
    return options


@lru_cache(maxsize=4)
def _producer(broker_url: str, options_key: tuple) -> Celery:
    app = Celery("pruneboard-api", broker=broker_url, set_as_current=False)
    app.conf.broker_transport_options = dict(options_key)
    app.conf.broker_connection_timeout = SEND_TIMEOUT_S
    app.conf.broker_connection_retry_on_startup = True
    return app


def send_message(settings: Settings, message: Message) -> None:
    """Publish one message, raising if the broker does not take it within SEND_TIMEOUT_S
    (no retries: the outbox retries)."""
    options = _producer_options(settings)
    producer = _producer(settings.resolved_broker_url, tuple(sorted(options.items())))
    producer.send_task(TASKS[message.kind], args=[message.row_id],
                       queue=settings.queue_name, retry=False)


class _BrokerState:
    """Whether this process's last send failed: requests then skip sending for a while and the
    dispatchers (which always try) find out when the broker is back. Logged once per outage."""

    def __init__(self):
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0

    def skip(self) -> bool:
        return time.monotonic() < self._retry_at

    def failed(self, error: Exception, pause_s: float) -> None:
        with self._lock:
            first = self._down_since is None
            now = time.monotonic()
            self._down_since = self._down_since or now
            self._retry_at = now + pause_s
        if first:
            log.warning("cannot send to the broker (%s: %s); queued rows stay pending and are "
                        "sent when it is back", type(error).__name__, _first_line(error))

    def sent(self) -> None:
        with self._lock:
            down_since, self._down_since, self._retry_at = self._down_since, None, 0.0
        if down_since is not None:
            log.warning("the broker is back after %.1f s; sending pending messages",
                        time.monotonic() - down_since)


_broker = _BrokerState()


def dispatch_now(settings: Settings, messages: Iterable[Message], *,
                 send: Sender | None = None) -> bool:
    """After the commit that queued these rows: send their messages and mark them sent. Never
    raises; False when something is left pending for the dispatchers."""
    messages = list(messages)
    if not messages:
        return True
    if send is None and _broker.skip():
        return False
    sent = _send_all(settings, messages, send)
    if sent:
        try:
            with session_scope(settings.resolved_database_url) as session:
                mark_dispatched(session, sent)
        except Exception as error:
            # Sent but not marked: a dispatcher sends them once more, which is harmless.
            log.warning("could not mark %d sent messages: %s", len(sent), _first_line(error))
    return len(sent) == len(messages)


def dispatch_due(settings: Settings, *, send: Sender | None = None, limit: int = 200) -> int:
    """Send every pending (or evidently lost) message; returns how many went out. Raises what
    the database raises; a broker that is down only ends this round early."""
    with session_scope(settings.resolved_database_url) as session:
        due = due_messages(session, redispatch_after_s=settings.redispatch_after_s,
                           heartbeat_timeout_s=settings.heartbeat_timeout_s, limit=limit)
        sent = _send_all(settings, due, send) if due else []
        mark_dispatched(session, sent)
    if sent:
        log.info("dispatched %s", ", ".join(f"{m.kind} {m.row_id}" for m in sent))
    return len(sent)


def _send_all(settings: Settings, messages: list[Message], send: Sender | None
              ) -> list[Message]:
    """The messages sent, in order, up to the first the broker refused."""
    sent = []
    try:
        for message in messages:
            if send is None:
                send_message(settings, message)
            else:
                send(message)
            sent.append(message)
    except Exception as error:
        if send is None:  # what a test's stand-in does says nothing about the broker
            _broker.failed(error, settings.dispatch_interval_s)
        else:
            log.warning("sending failed: %s", _first_line(error))
    else:
        if send is None:
            _broker.sent()
    return sent


class DispatchLoop:
    """``dispatch_due`` every ``dispatch_interval_s`` on a daemon thread (the API's dispatcher;
    a worker runs it from its heartbeat thread instead)."""

    def __init__(self, settings: Settings, *, send: Sender | None = None):
        self.settings = settings
        self._send = send
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> DispatchLoop:
        if self._thread is None and self.settings.dispatch_interval_s > 0:
            self._thread = threading.Thread(target=self._run, daemon=True, name="dispatcher")
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.settings.dispatch_interval_s):
            try:
                dispatch_due(self.settings, send=self._send)
            except Exception as error:  # the database is away; the next round tries again
                log.warning("dispatching failed: %s", _first_line(error),
                            exc_info=not self._failing)
                self._failing = True
            else:
                self._failing = False


def broker_problem(settings: Settings) -> str | None:
    """None when the broker takes connections (within SEND_TIMEOUT_S), else why not; for the
    filesystem broker, whether its folders are there (made if missing) and writable."""
    url = settings.resolved_broker_url
    if url.startswith("filesystem"):
        try:
            folders = _broker_folders(settings)
            for folder in folders:
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            return f"broker folder unusable: {error.strerror or type(error).__name__}"
        if not all(os.access(folder, os.W_OK | os.X_OK) for folder in folders):
            return "broker folder not writable"
        return None
    try:
        with Connection(url, connect_timeout=SEND_TIMEOUT_S,
                        transport_options=_producer_options(settings)) as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                         timeout=SEND_TIMEOUT_S)
    except Exception as error:
        # The type only: this answer is public, and the message would name hosts and ports.
        return f"broker unreachable: {type(error).__name__}"
    return None


def _first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__
