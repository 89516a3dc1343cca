"""Database outages are not worker deaths.

A worker's writes (metric flushes, claim, finish, hand-back) retry connection errors with
backoff for up to ``db_outage_grace_s`` of the outage, counted from the first failure any thread
of the process saw (``Connectivity``); past that the run stops and hands its job back once it can
write again, and no worker loss is counted. The heartbeat's reaper judges other workers'
heartbeats only after this process has reached the database without a break for
``heartbeat_timeout_s``: after an outage every live worker has then beaten again.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from sqlalchemy import exc

log = logging.getLogger(__name__)

T = TypeVar("T")
_FIRST_DELAY_S, _MAX_DELAY_S = 0.1, 2.0
# SQLite "outages" are a busy or vanished file; its other OperationalErrors (no such table, a
# syntax error) are bugs, not worth waiting five minutes for.
_SQLITE_TRANSIENT = ("locked", "busy", "unable to open", "disk i/o")


class DatabaseUnreachable(Exception):
    """The database stayed unreachable for the whole grace period."""

    def __init__(self, seconds: float, cause: BaseException | None = None):
        what = f"{type(cause).__name__}: {first_line(cause)}" if cause else "no connection"
        super().__init__(f"database unreachable for {seconds:.0f} s ({what})")
        self.seconds = seconds


def is_connection_error(error: BaseException) -> bool:
    """Errors that mean "the database is not there right now", not "the statement is wrong"."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    original = getattr(error, "orig", None) if isinstance(error, exc.DBAPIError) else error
    if isinstance(original, sqlite3.OperationalError):
        return any(word in str(original).lower() for word in _SQLITE_TRANSIENT)
    if isinstance(error, exc.OperationalError | exc.InterfaceError):
        return True
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


class Connectivity:
    """When this process last reached the database, and since when it has failed to (shared by
    the heartbeat, the metric writer and the task of one worker process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._connected_since: float | None = None
        self._down_since: float | None = None

    def reached(self) -> None:
        with self._lock:
            down_since = self._down_since
            if self._connected_since is None:
                self._connected_since = self._clock()
            self._down_since = None
        if down_since is not None:
            log.warning("the database is back after %.1f s", self._clock() - down_since)

    def failed(self) -> None:
        with self._lock:
            self._connected_since = None
            if self._down_since is None:
                self._down_since = self._clock()

    def interrupted(self) -> None:
        """This process stalled (starved, paused): its contact was not unbroken after all, so
        the count starts again, as after a failure (without calling the database down)."""
        with self._lock:
            if self._connected_since is not None:
                self._connected_since = self._clock()

    def connected_for(self) -> float:
        """Seconds of unbroken contact (0 while unreachable or before the first contact)."""
        since = self._connected_since
        return 0.0 if since is None else self._clock() - since

    def down_for(self) -> float:
        """Seconds since the first failure of the current outage (0 when reachable)."""
        since = self._down_since
        return 0.0 if since is None else self._clock() - since


def with_retries(action: Callable[[], T], *, link: Connectivity, grace_s: float | None,
                 what: str, give_up: Callable[[], bool] = lambda: False) -> T:
    """``action()`` (which opens its own transaction), again after connection errors, with
    backoff, until it succeeds, or until the outage is ``grace_s`` old (None: no limit) or
    ``give_up()``: then DatabaseUnreachable. Other errors are raised at once."""
    delay, logged = _FIRST_DELAY_S, False
    while True:
        try:
            result = action()
        except Exception as error:
            if not is_connection_error(error):
                raise
            link.failed()
            down = link.down_for()
            if (grace_s is not None and down >= grace_s) or give_up():
                raise DatabaseUnreachable(down, error) from error
            if not logged:
                log.warning("%s: database unreachable (%s); retrying for up to %s", what,
                            first_line(error),
                            "ever" if grace_s is None else f"{grace_s - down:.0f} s")
                logged = True
            pause = delay if grace_s is None else min(delay, max(grace_s - down, 0.01))
            time.sleep(pause)
            delay = min(delay * 2, _MAX_DELAY_S)
        else:
            link.reached()
            return result


def first_line(error: BaseException | None) -> str:
    text = str(error) if error is not None else ""
    return text.splitlines()[0] if text else type(error).__name__
