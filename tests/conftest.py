"""Shared fixtures: real databases, migrated by Alembic, one per test session or test."""

from __future__ import annotations

import os
import uuid

import pytest
from databases import migrate, temporary_postgres

# The machine's PostgreSQL (trust auth) and Redis; .ci/run starts them when they are down.
PG_ADMIN_URL = os.environ.get("PRUNEBOARD_TEST_PG",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PRUNEBOARD_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    with temporary_postgres(PG_ADMIN_URL) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'pruneboard.db'}"
    migrate(url)
    return url


@pytest.fixture(scope="session")
def redis_url():
    return REDIS_URL


@pytest.fixture
def queue_name():
    """A queue of this test's own, so tests sharing one Redis never take each other's tasks."""
    return f"pruneboard-test-{uuid.uuid4().hex[:8]}"
