"""What the service benchmarks share: a throwaway PostgreSQL database and a live API server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
import databases  # noqa: E402  (tests/support: one place for throwaway databases)

PG_ADMIN_URL = os.environ.get("PRUNEBOARD_BENCH_PG",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextmanager
def temporary_postgres() -> Iterator[str]:
    """A new, migrated database, dropped afterwards (the tests' own helper)."""
    with databases.temporary_postgres(PG_ADMIN_URL) as url:
        yield url


@contextmanager
def api_server(env: dict[str, str]) -> Iterator[str]:
    """uvicorn serving the real app in its own process; yields the base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "backend.main:app", "--port", str(port),
         "--log-level", "warning"], cwd=ROOT, env={**os.environ, **env})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/api/v1/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the API server did not start")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def create_job_and_token(database_url: str) -> tuple[int, str]:
    from backend.auth import create_token
    from backend.db import session_scope
    from backend.services.jobs import create_job

    with session_scope(database_url) as session:
        token = create_token(session, name=f"bench-{uuid.uuid4().hex[:6]}", scope="admin")
        job = create_job(session, owner="bench", config={"model": "mlp", "dataset": "digits",
                                                         "method": "sdprun"},
                         name="bench", tags=[])
        job.status = "running"
        return job.id, token
