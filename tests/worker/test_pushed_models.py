"""A pushed model from upload to finished job, in this process on SQLite: the API stores it, the
worker's inspect task rebuilds and measures it, a job names it, starts from its trained weights
and reports their accuracy before pruning. A pushed model whose files do not fit together fails
inspection with the reason, and a job cannot name it."""

from __future__ import annotations

import json

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save as save_safetensors
from sqlalchemy import select
from torch import nn

from backend.auth import create_token
from backend.db import session_scope
from backend.main import create_app
from backend.models import Analysis, Job, MetricPoint, ModelVersion, UserModel
from backend.settings import Settings
from pruning import TrainConfig, train
from pruning.compact.graphjson import describe
from worker import pushed_models, tasks
from worker.analyses import run_analysis
from worker.heartbeat import Heartbeat
from worker.jobs import reap_lost_inspections


def digits_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 10))


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, float]:
    """A network trained on digits with the engine itself (plain SGD, the module passed in)."""
    torch.manual_seed(0)
    net = digits_net()
    summary = train(TrainConfig.from_dict({"method": "sgd", "dataset": "digits", "epochs": 4,
                                           "lr": 0.05, "momentum": 0.9, "compact": False,
                                           "model": "digits-net"}), model=net)
    return net, summary["test_accuracy"]


@pytest.fixture
def stack(sqlite_url, tmp_path, monkeypatch):
    settings = Settings(database_url=sqlite_url, data_dir=tmp_path)
    sent = []
    beat = Heartbeat(settings, send=sent.append, device="cpu")
    monkeypatch.setattr(tasks, "dispatch_now", lambda settings, messages: None)
    with session_scope(sqlite_url) as session:
        token = create_token(session, name="alice", scope="submit")
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client, settings, beat


def push(client, name: str, net: nn.Module, weights: bytes | None = None):
    files = {"graph": ("g.json", json.dumps(describe(net)).encode())}
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    files["weights"] = ("w.safetensors", weights or save_safetensors(state))
    response = client.post("/api/v1/models", files=files,
                           data={"name": name, "input_shape": "1,8,8"})
    assert response.status_code == 201, response.text
    return response.json()


def version_id(settings, version: int = 1) -> int:
    with session_scope(settings.resolved_database_url) as session:
        return session.scalar(select(ModelVersion.id).where(ModelVersion.version == version))


def test_a_pushed_model_is_inspected_then_pruned_from_its_trained_weights(stack, trained):
    client, settings, beat = stack
    net, accuracy = trained
    push(client, "digits-net", net)
    refused = client.post("/api/v1/jobs", json={"model": "digits-net", "dataset": "digits"})
    assert refused.status_code == 422 and "usable once it is ready" in refused.text

    assert pushed_models.inspect_model(version_id(settings), settings=settings,
                                       beat=beat) == "ready"
    version = client.get("/api/v1/models/digits-net").json()["versions"][0]
    inspection = version["inspection"]
    assert version["status"] == "ready" and version["num_classes"] == 10
    assert inspection["params"] == sum(p.numel() for p in net.parameters())
    # 2 FLOPs per multiply-add: two 3x3 convs on 8x8 maps and the classifier.
    assert inspection["flops"] == 2 * (8 * 9 * 64 + 16 * 8 * 9 * 64 + 64 * 10)
    assert inspection["groups"] == 2 and inspection["units"] == 8 + 16
    assert inspection["pretrained"] is True
    assert any("outputs" in d["reason"] for d in inspection["dense_layers"])

    # The fine-tuning preset as the form applies it: over the model and data chosen.
    preset = next(p for p in client.get("/api/v1/config-spec").json()["presets"]
                  if p["id"] == "fine-tune-sdprun")
    assert [m["name"] for m in client.get("/api/v1/config-spec").json()["models"]] == [
        "digits-net"]
    submitted = client.post("/api/v1/jobs", json={
        **preset["values"], "model": "digits-net", "dataset": "digits", "epochs": 2})
    assert submitted.status_code == 201, submitted.text
    job = submitted.json()
    assert job["config"]["model_version"] == 1 and job["config"]["init"] == "pretrained"
    deleting = client.delete("/api/v1/models/digits-net")
    assert deleting.status_code == 409 and str(job["id"]) in deleting.text

    assert tasks.run_job(job["id"], settings=settings, beat=beat) == "succeeded"
    with session_scope(settings.resolved_database_url) as session:
        finished = session.get(Job, job["id"])
        reference = session.scalar(select(MetricPoint.value).where(
            MetricPoint.job_id == job["id"], MetricPoint.key == "pretrained_test_accuracy"))
    # Measured once, before any step, with BatchNorm statistics re-estimated on the job's data.
    assert reference == pytest.approx(accuracy, abs=0.03)
    assert reference > 0.8
    assert finished.summary["test_accuracy"] > 0.5
    assert client.delete("/api/v1/models/digits-net").status_code == 204


def test_weights_that_do_not_fit_the_graph_fail_inspection_with_the_reason(stack):
    client, settings, beat = stack
    other = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                          nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 10))
    state = {k: v.contiguous() for k, v in other.state_dict().items()}
    push(client, "mismatch", digits_net(), weights=save_safetensors(state))
    assert pushed_models.inspect_model(version_id(settings), settings=settings,
                                       beat=beat) == "failed"
    version = client.get("/api/v1/models/mismatch").json()["versions"][0]
    assert version["status"] == "failed"
    assert "0.weight is (3, 1, 3, 3), the graph's is (8, 1, 3, 3)" in version["error"]
    refused = client.post("/api/v1/jobs", json={"model": "mismatch", "dataset": "digits"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == "model"


def test_an_inspection_whose_worker_was_lost_fails_and_is_not_retried(stack):
    """Not requeued: a model that took its worker down (out of memory) would take the next."""
    client, settings, beat = stack
    push(client, "lost-net", digits_net())
    beat.beat()  # this worker is live
    with session_scope(settings.resolved_database_url) as session:
        version = session.scalar(select(ModelVersion).where(ModelVersion.version == 1))
        version.status, version.worker_id = "running", "gone-host:1:cpu"
    with session_scope(settings.resolved_database_url) as session:
        assert reap_lost_inspections(session, timeout_s=60) == 1
    push(client, "kept-net", digits_net())
    with session_scope(settings.resolved_database_url) as session:
        kept = session.scalar(select(ModelVersion).join(UserModel)
                              .where(UserModel.name == "kept-net"))
        kept.status, kept.worker_id = "running", beat.worker_id
    with session_scope(settings.resolved_database_url) as session:
        assert reap_lost_inspections(session, timeout_s=60) == 0
    lost = client.get("/api/v1/models/lost-net").json()["versions"][0]
    assert lost["status"] == "failed" and "worker inspecting it was lost" in lost["error"]
    assert client.get("/api/v1/models/kept-net").json()["versions"][0]["status"] == "running"


def test_a_twin_job_on_a_pushed_model_gets_its_valley_analysed(stack, trained):
    """The analysis rebuilds the job's network from the stored version, as the job did."""
    client, settings, beat = stack
    net, _ = trained
    push(client, "twin-net", net)
    assert pushed_models.inspect_model(version_id(settings), settings=settings,
                                       beat=beat) == "ready"
    job = client.post("/api/v1/jobs", json={
        "model": "twin-net", "dataset": "digits", "method": "sdprun", "epochs": 1, "lr": 0.02,
        "reference": "sgd", "analyses": ["linear"], "log_interval": 10}).json()
    assert tasks.run_job(job["id"], settings=settings, beat=beat) == "succeeded"
    with session_scope(settings.resolved_database_url) as session:
        analysis_id = session.scalar(select(Analysis.id).where(Analysis.job_id == job["id"]))
    assert run_analysis(analysis_id, settings=settings, beat=beat) == "succeeded"
    [analysis] = client.get(f"/api/v1/jobs/{job['id']}/analyses").json()
    assert analysis["status"] == "succeeded" and analysis["result"]["linear"], analysis
