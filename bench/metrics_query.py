"""GET /jobs/{id}/metrics on a job with 1,000,000 points in 10 series, 1,000 points per series.

Measured over HTTP against uvicorn and PostgreSQL, beside the baseline in the same run: the same
request answered by reading every point and downsampling in Python (what the API would do
without rollups). Also reports how fast the points went in through the worker's write path
(backend.services.ingest, COPY + one merge statement per batch).

    .venv/bin/python bench/metrics_query.py [--points 1000000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
import numpy as np
from _service import api_server, create_job_and_token, temporary_postgres

from backend.db import session_scope
from backend.services import metrics
from backend.services.ingest import insert_points

SERIES = 10
BATCH_STEPS = 500  # points per series per write, as a worker's 0.5 s flush of a fast job


def fill(url: str, job_id: int, points: int) -> float:
    steps = points // SERIES
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for start in range(0, steps, BATCH_STEPS):
        batch = [(f"series_{k}", s, float(v), time.time()) for k in range(SERIES)
                 for s, v in zip(range(start, min(start + BATCH_STEPS, steps)),
                                 rng.standard_normal(BATCH_STEPS), strict=False)]
        with session_scope(url) as session:
            insert_points(session, job_id, batch)
    return points / (time.perf_counter() - started)


def baseline(url: str, job_id: int) -> float:
    keys = [f"series_{k}" for k in range(SERIES)]
    started = time.perf_counter()
    with session_scope(url) as session:
        data = metrics._fetch_points(session, job_id, keys, 0)
        for steps, values in data.values():
            metrics._downsample(steps, values, 1000)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with temporary_postgres() as url:
        job_id, token = create_job_and_token(url)
        rate = fill(url, job_id, args.points)
        with api_server({"PRUNEBOARD_DATABASE_URL": url}) as api:
            client = httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"},
                                  timeout=60)
            request = f"/api/v1/jobs/{job_id}/metrics"
            client.get(request)  # warm-up: connection pool, plans
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                body = client.get(request, params={"max_points": 1000}).json()
                times.append(time.perf_counter() - started)
            assert all(len(s["steps"]) == 1000 for s in body["series"].values())
            base = [baseline(url, job_id) for _ in range(3)]
    p50, base50 = statistics.median(times), statistics.median(base)
    print("| points | ingest (points/s) | GET p50 | GET p95 | read-all baseline p50 | speedup |")
    print("|---|---|---|---|---|---|")
    p95 = sorted(times)[int(0.95 * (len(times) - 1))]
    print(f"| {args.points:,} | {rate:,.0f} | {p50 * 1000:.0f} ms | {p95 * 1000:.0f} ms | "
          f"{base50 * 1000:.0f} ms | {base50 / p50:.1f}x |")


if __name__ == "__main__":
    main()
