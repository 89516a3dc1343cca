"""The pruning forecast over HTTP: POST /config-spec/forecast for the form, the warnings of
POST /jobs, and GET /jobs/{id} serving the engine's forecast once the start event brought it."""

from __future__ import annotations

import uuid

from sqlalchemy import delete

from backend.db import session_scope
from backend.models import Worker, utcnow
from backend.settings import Settings
from worker.writer import EventWriter

FORECAST = "/api/v1/config-spec/forecast"
JOBS = "/api/v1/jobs"
# The audit's run: 10 epochs of 32 steps; features.27–40 died at steps 165–200.
AUDIT = {"model": "vgg16-bn", "dataset": "synthetic", "synthetic_shape": [3, 32, 32],
         "epochs": 10, "c": 0.015, "mu": 0.6}
FAMILY_DEFAULTS = {k: v for k, v in AUDIT.items() if k not in ("c", "mu")}


def test_the_form_gets_the_forecast_of_a_config_before_anything_runs(client, make_token):
    headers = make_token("read")  # nothing is stored: a reader may ask
    answer = client.post(FORECAST, headers=headers, json=AUDIT)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    forecast = body["forecast"]
    assert forecast["basis"] == "architecture" and forecast["total_steps"] == 320
    assert body["warnings"] == [forecast["warning"]]
    assert forecast["warning"].startswith("features.27–40 will be forced to zero at step ~166")
    layers = {layer["name"]: layer for layer in forecast["layers"]}
    assert layers["features.27"]["step"] == 166 and layers["features.0"]["step"] is None
    assert "classifier" not in layers  # never pruned by sdprun

    quiet = client.post(FORECAST, headers=headers, json=FAMILY_DEFAULTS).json()
    assert quiet["warnings"] == [] and quiet["forecast"]["warning"] is None
    assert client.post(FORECAST, headers=headers, json={"method": "sgd"}).json() == {
        "forecast": None, "warnings": []}


def test_a_bad_body_is_refused_as_post_jobs_refuses_it(client, make_token):
    headers = make_token("read")
    for body in ({"mu": 1.0}, {"model": "vgg16-bn"}, {"epochs": "5"}):
        forecast = client.post(FORECAST, headers=headers, json=body)
        submit = client.post(JOBS, headers=make_token("submit"), json=body)
        assert forecast.status_code == submit.status_code == 422
        assert forecast.json() == submit.json()
    assert client.post(FORECAST, json=AUDIT).status_code == 401


def test_a_reported_folder_gives_the_forecast_its_size(client, make_token, settings):
    name = f"cifar-{uuid.uuid4().hex[:6]}"
    worker_id = f"host:{uuid.uuid4().hex[:8]}:cpu"
    with session_scope(settings.resolved_database_url) as session:
        session.add(Worker(id=worker_id, host="host", device="cpu", started_at=utcnow(),
                           heartbeat_at=utcnow(),
                           datasets=[{"dataset": "cifar10", "data_dir": name,
                                      "input_shape": [3, 32, 32], "num_classes": 10,
                                      "train_size": 1000}]))
    try:
        body = {"model": "vgg16-bn", "dataset": "cifar10", "data_dir": name, "epochs": 10,
                "batch_size": 50}
        answer = client.post(FORECAST, headers=make_token("read"), json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["forecast"]["total_steps"] == 10 * 20
    finally:
        with session_scope(settings.resolved_database_url) as session:
            session.execute(delete(Worker).where(Worker.id == worker_id))


def test_a_submitted_job_carries_its_forecast_until_the_engine_replaces_it(client, make_token,
                                                                           settings):
    headers = make_token("submit")
    created = client.post(JOBS, headers=headers, json={**AUDIT, "name": "audit"})
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["warnings"] and job["warnings"][0].startswith("features.27–40 will be forced")
    assert job["forecast"]["basis"] == "architecture"
    read = client.get(f"{JOBS}/{job['id']}", headers=headers).json()
    assert read["forecast"] == job["forecast"] and read["warnings"] == job["warnings"]
    listed = client.get(JOBS, headers=headers).json()["items"]
    assert all(item["forecast"] is None for item in listed)  # lists stay small

    # The worker's start event brings the engine's forecast from the real weights.
    engine = {**job["forecast"], "basis": "engine", "warning": "features.27–40 will be "
              "forced to zero at steps ~165–166 of 320. This is the threshold alone."}
    writer = EventWriter(Settings(database_url=settings.resolved_database_url), job["id"])
    writer({"type": "start", "step": 0, "total_steps": 320, "steps_per_epoch": 32,
            "device": "cpu", "config": {}, "forecast": engine})
    writer.close()
    read = client.get(f"{JOBS}/{job['id']}", headers=headers).json()
    assert read["forecast"] == engine and read["warnings"] == [engine["warning"]]
    logs = client.get(f"{JOBS}/{job['id']}/logs", headers=headers).json()["items"]
    assert any(line["level"] == "warning" and line["message"] == "pruning forecast: "
               + engine["warning"] for line in logs)


def test_a_job_without_threshold_has_no_warnings(client, make_token):
    job = client.post(JOBS, headers=make_token("submit"), json={"method": "sgd"}).json()
    assert job["forecast"] is None and job["warnings"] == []
