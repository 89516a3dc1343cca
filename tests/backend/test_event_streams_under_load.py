"""Event streams under load, against a real uvicorn API: many streams that joined in every way get
every row exactly once, and more streams than pooled connections leave reads answering with no
session idle in a transaction."""
from __future__ import annotations

import asyncio
import json
import time

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from stream_kit import (
    JOBS,
    PER_BATCH,
    finish,
    listen,
    logs_of,
    new_job,
    new_token,
    serve,
    steps_of,
    wait_ready,
    write_batch,
)

from backend.db import get_engine
from backend.settings import Settings


def test_every_stream_gets_every_point_once_however_it_joined(settings):
    """30 streams of one job on a real server while a writer commits batches: ten from "now"
    before the first batch, ten from the job's start cursor while the hub is ahead of them (so
    they catch up on their own, then join), ten more later with Last-Event-ID."""
    url, batches = settings.resolved_database_url, 20
    job_id = new_job(url)
    _, headers = new_token(url)
    with serve(settings) as api:
        start = httpx.get(f"{api}{JOBS}/{job_id}/metrics", headers=headers).json()["cursor"]

        async def scenario() -> list[list[dict]]:
            path, ready, written = f"{JOBS}/{job_id}/events", [], []
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=api, timeout=60, limits=limits) as http:
                def group(**kwargs):
                    return [asyncio.create_task(listen(http, path, ready=ready, **kwargs))
                            for _ in range(10)]

                def writer() -> None:
                    for batch in range(batches):
                        write_batch(url, job_id, batch)
                        written.append(batch)
                        time.sleep(0.03)

                streams = group(headers=headers)
                await wait_ready(ready, 10)
                writing = asyncio.create_task(asyncio.to_thread(writer))
                while len(written) < 5:
                    await asyncio.sleep(0.01)
                streams += group(headers=headers, params={"after": start})
                while len(written) < 12:
                    await asyncio.sleep(0.01)
                streams += group(headers={**headers, "Last-Event-ID": start})
                await writing
                await asyncio.to_thread(finish, url, job_id)
                return await asyncio.gather(*streams)

        results = asyncio.run(asyncio.wait_for(scenario(), 180))
    assert len(results) == 30
    for events in results:
        assert steps_of(events) == list(range(batches * PER_BATCH))
        assert logs_of(events) == [f"batch {b}" for b in range(batches)]
        assert events[-1]["event"] == "end"
        assert json.loads(events[-1]["data"]) == {"status": "succeeded"}


def test_more_streams_than_connections_leave_reads_answering(postgres_url, tmp_path,
                                                            redis_url, queue_name):
    """40 open streams against a pool of 10 + 20 connections: no session idles in a
    transaction, and GET /jobs/ID still answers (it waited for a free connection before)."""
    settings = Settings(data_dir=tmp_path, database_url=postgres_url, broker_url=redis_url,
                        queue_name=queue_name, sse_poll_interval_s=30.0)
    pool = get_engine(postgres_url).pool  # the server's engine is made the same way
    assert pool.size() + pool._max_overflow < 40
    job_id = new_job(postgres_url)
    _, headers = new_token(postgres_url)
    probe = create_engine(postgres_url, poolclass=NullPool)
    with serve(settings) as api:

        async def scenario() -> tuple[list, list[int]]:
            ready: list = []
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=api, timeout=60, limits=limits) as http:
                streams = [asyncio.create_task(listen(http, f"{JOBS}/{job_id}/events",
                                                      headers, ready)) for _ in range(30)]
                # From change 0: each gets the job's "submitted" change at once.
                streams += [asyncio.create_task(listen(
                    http, "/api/v1/events", {**headers, "Last-Event-ID": "0"}, ready))
                    for _ in range(10)]
                await wait_ready(ready, 40)  # every stream has done its first read
                with probe.connect() as connection:
                    idle = connection.execute(text(
                        "SELECT pid, query FROM pg_stat_activity WHERE datname = "
                        "current_database() AND pid <> pg_backend_pid() "
                        "AND state = 'idle in transaction'")).all()
                answers = [(await http.get(f"{JOBS}/{job_id}", headers=headers)).status_code,
                           (await http.get(JOBS, headers=headers)).status_code]
                for stream in streams:
                    stream.cancel()
                await asyncio.gather(*streams, return_exceptions=True)
                return idle, answers

        idle, answers = asyncio.run(asyncio.wait_for(scenario(), 180))
    probe.dispose()
    assert idle == []
    assert answers == [200, 200]
