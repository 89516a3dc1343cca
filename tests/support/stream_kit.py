"""What the event-stream tests share: rows written the way a worker writes them, the SSE wire
format read back, and a real uvicorn API to stream from."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from embedded import free_port
from processes import stop_process_group, wait_for

from backend.auth import create_token
from backend.db import session_scope
from backend.models import Job, utcnow
from backend.services import stream_hub
from backend.services.ingest import insert_points
from backend.services.jobs import add_log, create_job, record_change
from backend.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
JOBS = "/api/v1/jobs"
PER_BATCH = 50


def new_job(url: str) -> int:
    with session_scope(url) as session:
        job = create_job(session, owner="streams", name="streams", tags=[],
                         config={"model": "mlp", "dataset": "digits", "method": "sdprun"})
        job.status = "running"
        return job.id


def new_token(url: str, scope: str = "read") -> tuple[str, dict[str, str]]:
    name = f"stream-{uuid.uuid4().hex[:8]}"
    with session_scope(url) as session:
        token = create_token(session, name=name, scope=scope)
    return name, {"Authorization": f"Bearer {token}"}


def write_batch(url: str, job_id: int, batch: int) -> None:
    """Points batch*PER_BATCH … and one log line, in one commit, as a worker's flush."""
    steps = range(batch * PER_BATCH, (batch + 1) * PER_BATCH)
    with session_scope(url) as session:
        insert_points(session, job_id, [("loss", step, float(step), 0.0) for step in steps])
        add_log(session, job_id, f"batch {batch}")


def finish(url: str, job_id: int) -> None:
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        job.status, job.finished_at = "succeeded", utcnow()
        record_change(session, job, note="done")


def parse(lines) -> Iterator[dict]:
    current: dict = {}
    for line in lines:
        if not line:
            if current:
                yield current
            current = {}
        elif line.startswith(("id:", "event:", "data:")):
            name, _, value = line.partition(":")
            current[name] = value.strip()


def steps_of(events: list[dict]) -> list[int]:
    return [p["step"] for e in events if e["event"] == "metrics"
            for p in json.loads(e["data"])["points"]]


def logs_of(events: list[dict]) -> list[str]:
    return [json.loads(e["data"])["message"] for e in events if e["event"] == "log"]


def until(events: Iterator[dict], predicate) -> list[dict]:
    """Events up to and including the first one for which ``predicate(seen)`` holds."""
    seen = []
    for item in events:
        seen.append(item)
        if predicate(seen):
            return seen
    raise AssertionError(f"the stream ended after {[e['event'] for e in seen]}")


def ticks_pass(hub: stream_hub.StreamHub, count: int = 2) -> None:
    """Wait for the hub to finish ``count`` reads started after now (the first may be one in
    flight that read too early), or to have no subscriber left (then it reads no more)."""
    start = hub.ticks
    wait_for(lambda: hub.ticks >= start + count or not hub.subscribers, timeout=60,
             what="the stream hub's reads")


@contextmanager
def serve(settings: Settings, **extra: str) -> Iterator[str]:
    """The API in its own uvicorn process, on the test's database; yields its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRUNEBOARD_")}
    env.update(PRUNEBOARD_DATA_DIR=str(settings.data_dir),
               PRUNEBOARD_QUEUE_NAME=settings.queue_name,
               PRUNEBOARD_SSE_POLL_INTERVAL_S=str(settings.sse_poll_interval_s), **extra)
    if settings.database_url:
        env["PRUNEBOARD_DATABASE_URL"] = settings.database_url
    if settings.broker_url:
        env["PRUNEBOARD_BROKER_URL"] = settings.broker_url
    port, log_path = free_port(), settings.data_dir / f"api-{uuid.uuid4().hex[:6]}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "backend.main:app", "--port", str(port),
             "--log-level", "warning"], cwd=ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/api/v1/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None  # died: fail below with its log

    try:
        wait_for(healthy, timeout=60, what="the API server", details=log_path.read_text)
        assert process.poll() is None, log_path.read_text()
        yield url
    finally:
        stop_process_group(process)


async def listen(http: httpx.AsyncClient, path: str, headers: dict, ready: list,
                 params: dict | None = None) -> list[dict]:
    """One stream's events until ``end`` or ``reconnect``; appends to ``ready`` at its first."""
    events: list[dict] = []
    async with http.stream("GET", path, headers=headers, params=params) as response:
        assert response.status_code == 200, await response.aread()
        lines: list[str] = []
        async for line in response.aiter_lines():
            lines.append(line)
            if line:
                continue
            had_any = bool(events)
            events.extend(parse(lines))
            lines = []
            if events and not had_any:
                ready.append(path)
            if events and events[-1]["event"] in ("end", "reconnect"):
                break
    return events


async def wait_ready(ready: list, count: int) -> None:
    while len(ready) < count:
        await asyncio.sleep(0.02)


