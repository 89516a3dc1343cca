"""The embedded database's files: private to their owner, with foreign keys enforced."""

import os
import stat

import pytest
from databases import migrate
from sqlalchemy import text

from backend.db import get_engine


@pytest.fixture
def open_umask():
    """The usual umask, under which a file is made world-readable unless asked otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_its_wal_and_shm_are_created_0600(tmp_path, open_umask):
    path = tmp_path / "pruneboard.db"
    engine = get_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (1)"))
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        for name in ("pruneboard.db", "pruneboard.db-wal", "pruneboard.db-shm"):
            assert mode(tmp_path / name) == 0o600, name
    finally:
        engine.dispose()


def test_a_migration_that_creates_the_database_makes_it_0600(tmp_path, open_umask):
    path = tmp_path / "migrated.db"
    migrate(f"sqlite:///{path}")
    assert mode(path) == 0o600


def test_an_existing_database_keeps_its_mode(tmp_path, open_umask):
    path = tmp_path / "shared.db"
    path.touch()
    path.chmod(0o640)
    engine = get_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
    finally:
        engine.dispose()
    assert mode(path) == 0o640
