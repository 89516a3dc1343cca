"""Shared fixtures: real databases, migrated by Alembic, one per test session or test."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The machine's PostgreSQL (trust auth) and Redis; .ci/run starts them when they are down.
PG_ADMIN_URL = os.environ.get("PRUNEBOARD_TEST_PG",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PRUNEBOARD_TEST_REDIS", "redis://127.0.0.1:6379/0")


def migrate(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    from sqlalchemy import create_engine, text

    name = f"pruneboard_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrate(url)
    yield url
    from backend.db import get_engine

    get_engine(url).dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


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
