"""worker.outage: which errors mean "the database is away", and the retry policy around them."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from worker.outage import Connectivity, DatabaseUnreachable, is_connection_error, with_retries


def wrapped(error: Exception, kind=OperationalError) -> Exception:
    return kind("SELECT 1", {}, error)


def test_connection_errors_are_told_from_statement_errors():
    assert is_connection_error(wrapped(psycopg.OperationalError("connection refused")))
    assert is_connection_error(psycopg.OperationalError("server closed the connection"))
    assert is_connection_error(wrapped(sqlite3.OperationalError("database is locked")))
    assert not is_connection_error(wrapped(sqlite3.OperationalError("no such table: jobs")))
    assert not is_connection_error(wrapped(psycopg.errors.UndefinedTable("jobs"),
                                           ProgrammingError))
    assert not is_connection_error(wrapped(psycopg.errors.UniqueViolation("dup"),
                                           IntegrityError))
    assert not is_connection_error(ValueError("not a database error"))


def test_a_real_refused_connection_is_a_connection_error():
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    with pytest.raises(OperationalError) as raised, engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    assert is_connection_error(raised.value)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def failing(times: int, clock: Clock, step_s: float = 1.0):
    calls = []

    def action() -> str:
        calls.append(clock.now)
        if len(calls) <= times:
            clock.now += step_s
            raise wrapped(psycopg.OperationalError("connection refused"))
        return "written"

    return action, calls


def test_writes_are_retried_through_an_outage_shorter_than_the_grace(monkeypatch):
    monkeypatch.setattr("worker.outage.time.sleep", lambda seconds: None)
    clock = Clock()
    link = Connectivity(clock)
    action, calls = failing(3, clock)
    assert with_retries(action, link=link, grace_s=10, what="test") == "written"
    assert len(calls) == 4
    assert link.down_for() == 0 and link.connected_for() == 0  # reached just now
    clock.now += 5
    assert link.connected_for() == 5


def test_a_write_gives_up_once_the_outage_is_as_old_as_the_grace(monkeypatch):
    monkeypatch.setattr("worker.outage.time.sleep", lambda seconds: None)
    clock = Clock()
    link = Connectivity(clock)
    link.failed()  # the heartbeat saw the outage begin 8 s ago
    clock.now += 8
    action, calls = failing(100, clock)
    with pytest.raises(DatabaseUnreachable) as raised:
        with_retries(action, link=link, grace_s=10, what="test")
    assert len(calls) == 2 and raised.value.seconds == 10
    assert str(raised.value).startswith("database unreachable for 10 s (OperationalError: ")


def test_a_statement_error_is_raised_at_once():
    calls = []

    def action() -> None:
        calls.append(1)
        raise wrapped(psycopg.errors.UndefinedTable("jobs"), ProgrammingError)

    with pytest.raises(ProgrammingError):
        with_retries(action, link=Connectivity(), grace_s=None, what="test")
    assert calls == [1]


def test_a_stall_of_the_process_restarts_the_count_of_unbroken_contact():
    clock = Clock()
    link = Connectivity(clock)
    assert link.connected_for() == 0  # no contact yet
    link.reached()
    clock.now += 10
    assert link.connected_for() == 10
    link.interrupted()  # the heartbeat woke up late: it cannot vouch for the last seconds
    clock.now += 1
    assert (link.connected_for(), link.down_for()) == (1, 0)
    link.failed()
    clock.now += 2
    assert (link.connected_for(), link.down_for()) == (0, 2)
    link.interrupted()  # no contact to restart
    assert link.connected_for() == 0
