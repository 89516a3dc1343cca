"""Event streams under load: many open streams, a writer at 1,000 points/s, and reads.

A real uvicorn API on PostgreSQL, then on embedded SQLite. First the baseline: the writer logs
points to one job while GET /jobs/ID and GET /jobs run at 20 requests/s, no stream open. Then
the same with streams open (three job streams of a second job to every job-list stream), all
from one cursor taken before the writer starts on that job; when the job finishes, every job
stream must have got every point exactly once, and every list stream every job change. The
streams run in a process of their own and the writer in another, so that parsing 200 streams
does not delay the reads' own clock. Loopback only; bounded in streams and seconds.

    .venv/bin/python bench/stream_load.py [--seconds 30] [--pg-streams 200] [--sqlite-streams 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

import httpx
import numpy as np
from _service import api_server, create_job_and_token, databases, temporary_postgres
from sqlalchemy import func, select

from backend.db import get_engine, session_scope
from backend.models import Job, JobChange, MetricPoint, utcnow
from backend.services.ingest import insert_points
from backend.services.jobs import create_job, record_change

SCRIPT = Path(__file__).resolve()
READS_PER_S = 20
RATE = 1000  # points per second
WRITES_PER_S = 10


def write(url: str, job_id: int, seconds: float, finish: bool) -> None:
    """The writer process: RATE points/s in WRITES_PER_S commits, the job's progress once a
    second (a job change, as a worker's), and at the end the job's success if ``finish``."""
    with session_scope(url) as session:  # connected and imported before the clock starts
        session.get(Job, job_id)
    print("go", flush=True)
    per_write, step, start = RATE // WRITES_PER_S, 0, time.monotonic()
    writes = 0
    while time.monotonic() - start < seconds:
        with session_scope(url) as session:
            insert_points(session, job_id, [("loss", step + i, 1.0 / (1 + step + i), time.time())
                                            for i in range(per_write)])
        step, writes = step + per_write, writes + 1
        if writes % WRITES_PER_S == 0:
            with session_scope(url) as session:
                job = session.get(Job, job_id)
                job.step = step
                record_change(session, job)
        time.sleep(max(0.0, start + writes / WRITES_PER_S - time.monotonic()))
    if finish:
        with session_scope(url) as session:
            job = session.get(Job, job_id)
            job.status, job.finished_at, job.step = "succeeded", utcnow(), step
            record_change(session, job, note="done")
    print(json.dumps({"points": step, "behind_s": round(time.monotonic() - start - seconds, 2)}))


async def follow(http: httpx.AsyncClient, path: str, token: str, cursor: str, ready: list,
                 on_data, done: asyncio.Event | None = None) -> int:
    """One client of a stream, reconnecting with Last-Event-ID as the CLI and browsers do;
    returns how often it had to reconnect. Ends at ``end`` (or when ``done`` is set). It
    counts as ready at its first event: the server has done its first read by then."""
    reconnects, announced = 0, False
    while True:
        headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": cursor}
        try:
            async with http.stream("GET", path, headers=headers) as response:
                response.raise_for_status()
                name = data = None
                async for line in response.aiter_lines():
                    if line.startswith("id:"):
                        cursor = line[3:].strip()
                    elif line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:]
                    elif not line and name:
                        if not announced:
                            announced = True
                            ready.append(path)
                        if name == "end":
                            return reconnects
                        if name == "reconnect":
                            break
                        on_data(name, data)
                        name = data = None
                        if done is not None and done.is_set():
                            return reconnects
        except httpx.TransportError:
            pass
        reconnects += 1
        await asyncio.sleep(0.2)


def streams_role(args) -> None:
    """The streams process: opens them, says "ready", and prints what each received."""
    asyncio.run(_streams(args))


async def _streams(args) -> None:
    steps = [array("i") for _ in range(args.job_streams)]
    changes = [array("q") for _ in range(args.list_streams)]
    ready: list = []
    list_done = asyncio.Event()

    def on_points(sink):
        def take(name, data):
            if name == "metrics":
                sink.extend(p["step"] for p in json.loads(data)["points"])
        return take

    def on_change(sink):
        def take(name, data):
            if name == "job":
                sink.append(json.loads(data)["change_id"])
        return take

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=args.api, timeout=httpx.Timeout(60),
                                 limits=limits) as http:
        jobs = [asyncio.create_task(follow(http, f"/api/v1/jobs/{args.job}/events", args.token,
                                           args.cursor, ready, on_points(sink)))
                for sink in steps]
        lists = [asyncio.create_task(follow(http, "/api/v1/events", args.token,
                                            str(args.change), ready, on_change(sink),
                                            list_done)) for sink in changes]
        while len(ready) < args.job_streams + args.list_streams:
            await asyncio.sleep(0.05)
        print("ready", flush=True)
        job_reconnects = await asyncio.gather(*jobs)
        expected_changes = await asyncio.to_thread(_changes_after, args.url, args.change)
        last, deadline = expected_changes[-1], time.monotonic() + 60
        while any(not sink or sink[-1] < last for sink in changes) and \
                time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        list_done.set()
        for task in lists:
            task.cancel()
        await asyncio.gather(*lists, return_exceptions=True)
    with session_scope(args.url) as session:
        written = session.scalar(select(func.count()).select_from(MetricPoint)
                                 .where(MetricPoint.job_id == args.job))
    print(json.dumps({"written": written, "job": [_tally(s, range(written)) for s in steps],
                      "list": [_tally(c, expected_changes) for c in changes],
                      "reconnects": sum(job_reconnects)}))


def _changes_after(url: str, after: int) -> list[int]:
    with session_scope(url) as session:
        return list(session.scalars(select(JobChange.id).where(JobChange.id > after)
                                    .order_by(JobChange.id)))


def _tally(received: array, expected) -> dict:
    """How many arrived, how many were repeats, and how many of ``expected`` never came."""
    got = np.frombuffer(received, dtype=np.int32 if received.typecode == "i" else np.int64)
    unique = np.unique(got)
    return {"received": int(got.size), "duplicates": int(got.size - unique.size),
            "missing": int(np.setdiff1d(np.asarray(list(expected), dtype=got.dtype),
                                        unique).size)}


async def read_load(api: str, token: str, job_id: int, seconds: float) -> list[float]:
    """GET /jobs/ID and GET /jobs in turn, READS_PER_S a second on a fixed schedule (a slow
    answer does not delay the next request); the latencies in ms, failures as inf."""
    latencies: list[float] = []

    async def one(http, path):
        began = time.perf_counter()
        try:
            response = await http.get(path)
            ok = response.status_code == 200
        except httpx.HTTPError:
            ok = False
        latencies.append((time.perf_counter() - began) * 1000 if ok else float("inf"))

    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as http:
        start, tasks = time.perf_counter(), []
        for i in range(int(seconds * READS_PER_S)):
            await asyncio.sleep(max(0.0, start + i / READS_PER_S - time.perf_counter()))
            path = f"/api/v1/jobs/{job_id}" if i % 2 == 0 else "/api/v1/jobs"
            tasks.append(asyncio.create_task(one(http, path)))
        await asyncio.gather(*tasks)
    return latencies


def busy_cores() -> tuple[int, int]:
    """The machine's busy and total CPU ticks so far (Linux /proc/stat; zeros elsewhere)."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0, 0
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


def cores_between(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Average busy cores of the whole machine (every process, not only ours) in between."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total * (os.cpu_count() or 1) if total else float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def role(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], text=True, **popen)


def run(label: str, url: str, env: dict[str, str], streams: int, seconds: float,
        baseline_s: float) -> dict:
    stream_job, token = create_job_and_token(url)
    with session_scope(url) as session:
        quiet = create_job(session, owner="bench", name="baseline", tags=[],
                           config={"model": "mlp", "dataset": "digits", "method": "sdprun"})
        quiet.status = "running"
    quiet_id = quiet.id
    list_streams = streams // 4
    with api_server(env) as api:
        asyncio.run(read_load(api, token, stream_job, 2.0))  # warm-up, not counted
        writer = role("--role", "writer", url, str(quiet_id), str(baseline_s),
                      stdout=subprocess.PIPE)
        writer.stdout.readline()  # "go"
        before = busy_cores()
        alone = asyncio.run(read_load(api, token, stream_job, baseline_s))
        busy_alone = cores_between(before, busy_cores())
        writer.communicate(timeout=120)
        cursor = httpx.get(f"{api}/api/v1/jobs/{stream_job}/metrics", timeout=30, headers={
            "Authorization": f"Bearer {token}"}).json()["cursor"]
        # One change behind the newest, so that every list stream has a first event at once.
        with session_scope(url) as session:
            change = session.scalar(select(func.max(JobChange.id))) - 1
        clients = role("--role", "streams", url, api, token, str(stream_job), cursor,
                       str(change), str(streams - list_streams), str(list_streams),
                       stdout=subprocess.PIPE)
        opened = time.monotonic()
        if clients.stdout.readline().strip() != "ready":
            clients.kill()
            raise RuntimeError("the stream clients did not open")
        opened = time.monotonic() - opened
        time.sleep(2.0)  # the last streams' first writes drain
        writer = role("--role", "writer", url, str(stream_job), str(seconds), "--finish",
                      stdout=subprocess.PIPE)
        writer.stdout.readline()
        before = busy_cores()
        loaded = asyncio.run(read_load(api, token, stream_job, seconds))
        busy_loaded = cores_between(before, busy_cores())
        wrote = json.loads(writer.communicate(timeout=120)[0])
        got = json.loads(clients.communicate(timeout=300)[0])
    get_engine(url).dispose()
    per_stream = [s["received"] for s in got["job"]]
    finite = [v for v in loaded if v != float("inf")]
    return {
        "database": label, "streams": f"{streams} ({streams - list_streams} job, "
                                      f"{list_streams} list)",
        "open_s": opened, "reads": len(loaded), "failed": len(loaded) - len(finite),
        "p50": statistics.median(finite), "p99": percentile(loaded, 0.99),
        "p99_alone": percentile(alone, 0.99), "p50_alone": statistics.median(alone),
        "written": got["written"], "writer_behind_s": wrote["behind_s"],
        "min": min(per_stream), "max": max(per_stream),
        "duplicates": sum(s["duplicates"] for s in got["job"] + got["list"]),
        "missing": sum(s["missing"] for s in got["job"] + got["list"]),
        "changes": len(got["list"]) and got["list"][0]["received"],
        "reconnects": got["reconnects"], "busy_alone": busy_alone, "busy_loaded": busy_loaded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    parser.add_argument("--pg-streams", type=int, default=200)
    parser.add_argument("--sqlite-streams", type=int, default=50)
    args = parser.parse_args()
    rows = []
    with temporary_postgres() as url:
        rows.append(run("PostgreSQL", url, {"PRUNEBOARD_DATABASE_URL": url}, args.pg_streams,
                        args.seconds, args.baseline_seconds))
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder).resolve() / 'pruneboard.db'}"
        databases.migrate(url)
        rows.append(run("SQLite", url, {"PRUNEBOARD_DATA_DIR": folder,
                                        "PRUNEBOARD_DATABASE_URL": ""},
                        args.sqlite_streams, args.seconds, args.baseline_seconds))
    print("| database | streams | reads (failed) | read p50 | read p99 | p99, no streams | "
          "p99 ratio | points written | per job stream min / max | duplicates | missing |"
          " list changes | reconnects |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['database']} | {r['streams']} | {r['reads']} ({r['failed']}) | "
              f"{r['p50']:.0f} ms | {r['p99']:.0f} ms | {r['p99_alone']:.0f} ms | "
              f"{r['p99'] / r['p99_alone']:.2f}x | {r['written']:,} | "
              f"{r['min']:,} / {r['max']:,} | {r['duplicates']} | {r['missing']} | "
              f"{r['changes']} | {r['reconnects']} |")
    for r in rows:
        print(f"{r['database']}: streams open in {r['open_s']:.1f} s; read p50 "
              f"{r['p50_alone']:.0f} ms without streams; writer ended "
              f"{r['writer_behind_s']:.2f} s behind its schedule; machine busy "
              f"{r['busy_alone']:.1f} of {os.cpu_count()} cores without streams, "
              f"{r['busy_loaded']:.1f} with")


def _role_main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=["writer", "streams"])
    parser.add_argument("rest", nargs="*")
    parser.add_argument("--finish", action="store_true")
    args = parser.parse_args()
    if args.role == "writer":
        url, job_id, seconds = args.rest
        write(url, int(job_id), float(seconds), args.finish)
        return
    url, api, token, job, cursor, change, job_streams, list_streams = args.rest
    streams_role(argparse.Namespace(url=url, api=api, token=token, job=int(job), cursor=cursor,
                                    change=int(change), job_streams=int(job_streams),
                                    list_streams=int(list_streams)))


if __name__ == "__main__":
    if "--role" in sys.argv:
        _role_main()
    else:
        main()
