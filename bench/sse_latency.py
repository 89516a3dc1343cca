"""Latency from a metric point's commit (the worker's write) to its arrival at an SSE client.

A writer commits one point every 50 ms through the worker's write path, its value the commit
time; a client on GET /jobs/{id}/events records when each arrives. The API polls the database
every PRUNEBOARD_SSE_POLL_INTERVAL_S (0.2 s by default), which is the floor to compare with.

    .venv/bin/python bench/sse_latency.py [--points 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

import httpx
from _service import api_server, create_job_and_token, temporary_postgres

from backend.db import session_scope
from backend.services.ingest import insert_points
from backend.settings import Settings


def listen(api: str, token: str, job_id: int, expected: int, arrivals: list, ready) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", f"{api}/api/v1/jobs/{job_id}/events", headers=headers,
                      timeout=60) as response:
        for line in response.iter_lines():
            ready.set()
            if line.startswith("data:"):
                data = json.loads(line[5:])
                now = time.time()
                arrivals.extend(now - p["value"] for p in data.get("points", []))
                if len(arrivals) >= expected:
                    return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200)
    args = parser.parse_args()
    poll = Settings().sse_poll_interval_s
    with temporary_postgres() as url:
        job_id, token = create_job_and_token(url)
        with api_server({"PRUNEBOARD_DATABASE_URL": url}) as api:
            arrivals: list[float] = []
            ready = threading.Event()
            client = threading.Thread(target=listen, daemon=True,
                                      args=(api, token, job_id, args.points, arrivals, ready))
            client.start()
            ready.wait(30)
            for step in range(args.points):
                with session_scope(url) as session:
                    insert_points(session, job_id, [("latency", step, time.time(), 0.0)])
                time.sleep(0.05)
            client.join(30)
    latencies = sorted(arrivals)
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print("| points | p50 | p95 | max | poll interval | p95 / 1 s target |")
    print("|---|---|---|---|---|---|")
    print(f"| {len(latencies)} | {p50 * 1000:.0f} ms | {p95 * 1000:.0f} ms | "
          f"{latencies[-1] * 1000:.0f} ms | {poll * 1000:.0f} ms | {p95:.2f} |")


if __name__ == "__main__":
    main()
