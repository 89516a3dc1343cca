"""Worker plugins end to end, in this process on SQLite: a worker's heartbeat reports the names
an installed distribution registers, the API then accepts a job naming them (and refused it
before), and the worker runs the plugin's model on the plugin's dataset."""

from __future__ import annotations

from fastapi.testclient import TestClient
from plugin_dist import installed_plugins
from sqlalchemy import select

from backend.auth import create_token
from backend.db import session_scope
from backend.main import create_app
from backend.models import Job, Worker
from backend.settings import Settings
from pruning import plugins
from worker import tasks
from worker.heartbeat import Heartbeat


def test_a_plugin_model_on_a_plugin_dataset_runs_once_a_worker_reports_them(
        sqlite_url, tmp_path, monkeypatch):
    monkeypatch.setattr(plugins, "_WARNED", set())
    monkeypatch.setattr(tasks, "dispatch_now", lambda settings, messages: None)
    settings = Settings(database_url=sqlite_url, data_dir=tmp_path)
    with session_scope(sqlite_url) as session:
        token = create_token(session, name="alice", scope="submit")
    body = {"model": "tiny-net", "dataset": "blobs", "method": "sdprun", "epochs": 2,
            "batch_size": 10, "log_interval": 1}
    site = tmp_path / "site"
    site.mkdir()
    with TestClient(create_app(settings)) as client, installed_plugins(site, monkeypatch):
        client.headers["Authorization"] = f"Bearer {token}"
        before = client.post("/api/v1/jobs", json=body)
        assert before.status_code == 422
        assert {d["field"] for d in before.json()["detail"]} == {"model", "dataset"}
        beat = Heartbeat(settings, send=lambda message: None, device="cpu")
        beat.beat()
        with session_scope(sqlite_url) as session:
            reported = session.scalar(select(Worker.plugins))
        assert reported == {"models": ["exploding-net", "stringy-net", "tiny-net"],
                            "datasets": ["blobs", "lopsided"]}
        response = client.post("/api/v1/jobs", json=body)
        assert response.status_code == 201, response.text
        job_id = response.json()["id"]
        assert tasks.run_job(job_id, settings=settings, beat=beat) == "succeeded"
        with session_scope(sqlite_url) as session:
            summary = session.get(Job, job_id).summary
        assert summary["model"] == "tiny-net" and summary["dataset"] == "blobs"
        assert summary["test_accuracy"] > 0.5  # three separable blobs
