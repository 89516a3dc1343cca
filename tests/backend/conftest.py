import uuid

import pytest
from fastapi.testclient import TestClient

from backend.auth import create_token
from backend.db import session_scope
from backend.main import create_app
from backend.settings import Settings


@pytest.fixture(params=["postgresql", "sqlite"])
def settings(request, tmp_path, redis_url, queue_name):
    """The API on each database; tasks go to a queue of the test's own that no worker reads."""
    if request.param == "postgresql":
        return Settings(data_dir=tmp_path, database_url=request.getfixturevalue("postgres_url"),
                        broker_url=redis_url, queue_name=queue_name, sse_poll_interval_s=0.05)
    request.getfixturevalue("sqlite_url")  # migrates <tmp_path>/pruneboard.db
    return Settings(data_dir=tmp_path, queue_name=queue_name, sse_poll_interval_s=0.05)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def make_token(settings):
    def make(scope="admin", name=None):
        with session_scope(settings.resolved_database_url) as session:
            token = create_token(session, name=name or f"{scope}-{uuid.uuid4().hex[:8]}",
                                 scope=scope)
        return {"Authorization": f"Bearer {token}"}
    return make
