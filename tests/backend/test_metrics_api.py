import json
import math

import numpy as np
from sqlalchemy import func, select

from backend.db import session_scope
from backend.models import Job, MetricPoint, MetricRollup, utcnow
from backend.services.ingest import insert_points
from backend.services.jobs import add_log, record_change

JOBS = "/api/v1/jobs"


def new_job(client, headers):
    return client.post(JOBS, headers=headers, json={"epochs": 1}).json()["id"]


def store(settings, job_id, points):
    with session_scope(settings.resolved_database_url) as session:
        return insert_points(session, job_id, points)


def wave(key, steps, offset=0.0):
    return [(key, s, math.sin(s / 50) + offset, 0.0) for s in steps]


def test_points_are_stored_once_and_rollups_stay_exact(client, make_token, settings):
    job_id = new_job(client, make_token())
    points = wave("loss", range(0, 3000))
    assert store(settings, job_id, points[:2000]) == 2000
    # A redelivered, overlapping batch: only the 1000 new points go in.
    assert store(settings, job_id, points[1000:]) == 1000
    with session_scope(settings.resolved_database_url) as session:
        assert session.scalar(select(func.count()).select_from(MetricPoint)
                              .where(MetricPoint.job_id == job_id)) == 3000
        rollups = session.scalars(select(MetricRollup).where(MetricRollup.job_id == job_id,
                                                             MetricRollup.width == 64)).all()
    assert sum(r.count for r in rollups) == 3000
    values = np.array([p[2] for p in points])
    for rollup in rollups:
        inside = values[rollup.bucket * 64:(rollup.bucket + 1) * 64]
        assert rollup.min_value == inside.min() and rollup.max_value == inside.max()
        assert rollup.first_step == rollup.bucket * 64
        assert rollup.min_value == values[rollup.min_step]


def test_metrics_downsample_long_series_keeping_extremes(client, make_token, settings):
    headers = make_token("read")
    job_id = new_job(client, make_token())
    spike = wave("loss", range(0, 20_000))
    spike[12_345] = ("loss", 12_345, 50.0, 0.0)  # one outlier a plain stride would miss
    store(settings, job_id, spike + wave("acc", range(0, 20_000, 100)))
    body = client.get(f"{JOBS}/{job_id}/metrics", headers=headers,
                      params={"max_points": 500}).json()
    assert body["keys"] == ["acc", "loss"]
    loss = body["series"]["loss"]
    assert len(loss["steps"]) == 500 and loss["steps"] == sorted(loss["steps"])
    assert max(loss["values"]) == 50.0 and 12_345 in loss["steps"]
    assert min(loss["values"]) == min(p[2] for p in spike)
    assert len(body["series"]["acc"]["steps"]) == 200  # short series come whole
    full = client.get(f"{JOBS}/{job_id}/metrics", headers=headers,
                      params={"keys": "loss", "max_points": 0, "from_step": 19_990}).json()
    assert full["series"]["loss"]["steps"] == list(range(19_990, 20_000))
    csv = client.get(f"{JOBS}/{job_id}/metrics.csv", headers=headers).text.splitlines()
    assert csv[0] == "key,step,value,wall_time" and len(csv) == 1 + 20_000 + 200


def read_events(response):
    events, current = [], {}
    for line in response.iter_lines():
        if not line:
            if current:
                events.append(current)
            current = {}
            if events and events[-1]["event"] == "end":
                break
        elif line.startswith(("id:", "event:", "data:")):
            name, _, value = line.partition(":")
            current[name] = value.strip()
    return events


def finish(settings, job_id):
    with session_scope(settings.resolved_database_url) as session:
        job = session.get(Job, job_id)
        job.status, job.finished_at = "succeeded", utcnow()
        record_change(session, job, note="done")


def test_event_stream_resumes_from_last_event_id_without_gaps(client, make_token, settings):
    headers = make_token("read")
    job_id = new_job(client, make_token())
    store(settings, job_id, wave("loss", range(0, 10)))
    cursor = client.get(f"{JOBS}/{job_id}/metrics", headers=headers).json()["cursor"]
    store(settings, job_id, wave("loss", range(10, 20)))
    with session_scope(settings.resolved_database_url) as session:
        add_log(session, job_id, "checkpoint written")
    finish(settings, job_id)
    url = f"{JOBS}/{job_id}/events"
    with client.stream("GET", url, headers=headers, params={"after": cursor}) as response:
        events = read_events(response)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "metrics" and "log" in kinds and kinds[-1] == "end"
    steps = [p["step"] for e in events if e["event"] == "metrics"
             for p in json.loads(e["data"])["points"]]
    assert steps == list(range(10, 20))  # exactly what came after the cursor
    # Reconnecting with the last id seen gets nothing twice, only the end.
    with client.stream("GET", url, headers={**headers, "Last-Event-ID": events[-1]["id"]}
                       ) as response:
        again = read_events(response)
    assert [e["event"] for e in again] == ["status", "end"]


def test_job_list_stream_reports_changes(client, make_token, settings):
    headers = make_token("submit")
    first, second = new_job(client, headers), new_job(client, headers)
    with client.stream("GET", "/api/v1/events", headers={
            **headers, "Last-Event-ID": "0"}) as response:
        seen = set()
        for line in response.iter_lines():
            if line.startswith("data:"):
                seen.add(json.loads(line[5:])["id"])
            if {first, second} <= seen:
                break
    assert {first, second} <= seen
