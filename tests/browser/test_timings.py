"""Two measurements of the dashboard against the real stack, printed, never asserted on (the
machine is shared and noisy; see docs/architecture.md §6):

- write-to-chart latency: points written into the job's database with the one write path
  (backend.services.ingest.insert_points) while the job page is open, until each is drawn;
- first render of a job page holding 10 series of 100,000 points each.

The page's charts module logs, in ``window.__pbTrace``, when each series' newest step is on
screen, and marks "job-rendered" once every chart of the job page has drawn its first data.
Results also go to test-artifacts/browser-timings.json.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from pathlib import Path

from backend.db import session_scope
from backend.models import Job, JobChange, utcnow
from backend.services.ingest import insert_points

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
JOB_PAGE_KEYS = ("train_loss", "test_loss", "test_accuracy", "test_top5", "weight_sparsity",
                 "group_sparsity", "remaining_flops", "remaining_params", "threshold", "lr")
LIVE_WRITES = 40
BIG_POINTS = 100_000


def make_job(db_url: str, status: str, **fields) -> int:
    """A job row no worker will run (never enqueued); heartbeat fresh so no reaper touches it."""
    config = {"model": "mlp", "dataset": "digits", "method": "sdprun", "epochs": 1,
              "log_interval": 1}
    with session_scope(db_url) as session:
        job = Job(**{"owner": "admin", "name": f"timing {status}", "config": config,
                     "model": "mlp", "dataset": "digits", "method": "sdprun", "status": status,
                     "latest": {}, "step": 0, "attempt": 1, "cancel_requested": False,
                     "heartbeat_at": utcnow(), "started_at": utcnow(), **fields})
        session.add(job)
        session.flush()
        session.add(JobChange(job_id=job.id, status=status, step=0, latest={}, note="timing"))
        return job.id


def record(name: str, values: dict) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "browser-timings.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[name] = values
    path.write_text(json.dumps(data, indent=2))
    print(f"\n{name}: {json.dumps(values)}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def test_time_from_database_write_to_chart(signed_in, stack):
    job_id = make_job(stack["db_url"], "running", total_steps=10_000)
    page = signed_in
    page.goto(f"{stack['url']}/#/jobs/{job_id}")
    page.wait_for_function("window.__pbTrace.marks['job-rendered']")
    page.wait_for_selector("#job-live[data-state=live]")

    written = []
    for i in range(1, LIVE_WRITES + 1):
        step = 10 * i
        with session_scope(stack["db_url"]) as session:
            insert_points(session, job_id, [("group_sparsity", step, i / LIVE_WRITES, time.time())])
        written.append((step, time.time() * 1000))  # after the commit: the point is readable
        # Not in step with the stream's 0.2 s poll, so the waits fall anywhere in it.
        time.sleep(random.uniform(0.1, 0.35))
    page.wait_for_function(f"""window.__pbTrace.points.some(
        ([key, step]) => key === 'group_sparsity' && step >= {written[-1][0]})""", timeout=10_000)
    drawn = page.evaluate("window.__pbTrace.points.filter(([key]) => key === 'group_sparsity')")
    latencies = []
    for step, at in written:
        shown = min(t for key, last, t in drawn if last >= step)
        latencies.append(shown - at)
    record("write_to_chart_ms", {
        "points": len(latencies), "p50": round(statistics.median(latencies)),
        "p95": round(percentile(latencies, 0.95)), "max": round(max(latencies))})
    assert len(latencies) == LIVE_WRITES


def test_first_render_of_a_job_with_10_series_of_100k_points(stack, context):
    job_id = make_job(stack["db_url"], "succeeded", total_steps=BIG_POINTS, step=BIG_POINTS)
    started = time.perf_counter()
    wall = time.time()
    for n, key in enumerate(JOB_PAGE_KEYS):
        points = [(key, step, math.sin(step / 5000 + n) + (step % 97) / 970, wall)
                  for step in range(1, BIG_POINTS + 1)]
        for start in range(0, BIG_POINTS, 25_000):
            with session_scope(stack["db_url"]) as session:
                insert_points(session, job_id, points[start:start + 25_000])
    insert_s = time.perf_counter() - started

    context.request.post(f"{stack['url']}/api/v1/session", data={"token": stack["token"]})
    page = context.new_page()
    url = f"{stack['url']}/#/jobs/{job_id}"
    loads = []
    for _ in range(4):  # the first with an empty cache (plotly.min.js is 4.6 MB), then cached
        page.goto("about:blank")
        page.goto(url)
        page.wait_for_function("window.__pbTrace.marks['job-rendered']", timeout=60_000)
        loads.append(page.evaluate("window.__pbTrace.marks['job-rendered']"))
        counts = page.evaluate("""() => [...document.querySelectorAll('.chart-plot')]
            .filter((p) => p.data).flatMap((p) => p.data.map((t) => t.x.length))""")
    assert sorted(counts) == [1000] * len(JOB_PAGE_KEYS), counts  # downsampled by the API
    record("job_page_first_render_ms", {
        "series": len(JOB_PAGE_KEYS), "points_per_series": BIG_POINTS,
        "cold_cache": round(loads[0]), "warm_cache_median": round(statistics.median(loads[1:])),
        "warm_cache_all": [round(x) for x in loads[1:]], "insert_s": round(insert_s, 1)})
