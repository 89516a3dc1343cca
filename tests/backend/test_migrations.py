"""`alembic upgrade head` builds the schema from empty, and it matches the models exactly."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from backend.db import get_engine
from backend.models import Base


@pytest.mark.parametrize("database", ["postgres_url", "sqlite_url"])
def test_models_and_migrations_do_not_drift(request, database):
    url = request.getfixturevalue(database)  # fixtures run `alembic upgrade head` on empty
    with get_engine(url).connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
