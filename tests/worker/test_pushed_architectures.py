"""The three architectures of tests/support/own_models.py through the service, as a user would:
pushed (as graph JSON + weights, and one as ONNX), inspected ready by the worker task, pruned by
an l1-filter job at a 30 % FLOPs target and by an sdprun job, compacted with the function kept,
and exported files that ``load_compact`` reads back to the same accuracy. In this process on
SQLite; the engine-level exactness in float64 is tests/pruning/test_own_architectures_runs.py."""

from __future__ import annotations

import io
import json
import warnings

import pytest
import torch
from databases import migrate
from fastapi.testclient import TestClient
from own_models import INPUT_SHAPE, NUM_CLASSES, make
from safetensors.torch import save as save_safetensors
from sqlalchemy import select

from backend.auth import create_token
from backend.db import session_scope
from backend.main import create_app
from backend.models import Job, ModelVersion, UserModel
from backend.services.artifacts import export_dir
from backend.settings import Settings
from pruning.compact import load_compact
from pruning.compact.graphjson import describe
from pruning.data import load_dataset
from pruning.evaluate import evaluate
from worker import pushed_models, tasks
from worker.heartbeat import Heartbeat

SHAPE = ",".join(map(str, INPUT_SHAPE))
DATA = {"dataset": "synthetic", "synthetic_shape": list(INPUT_SHAPE),
        "synthetic_classes": NUM_CLASSES, "synthetic_size": 256, "batch_size": 32,
        "epochs": 2, "log_interval": 4, "bn_samples": 64}
L1_FILTER = {"method": "l1-filter", "target": "flops", "target_ratio": 0.3, "prune_start": 0.0,
             "prune_end": 0.5, "prune_interval": 2, "lr": 0.05, "momentum": 0.9}
# A threshold that removes groups within the 16 steps (as in the engine-level runs).
SDPRUN_C = {"mobilenetish": 0.45, "densenetish": 0.3, "tinyvit": 0.3}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pushed-architectures")
    url = f"sqlite:///{folder / 'pruneboard.db'}"
    migrate(url)
    settings = Settings(database_url=url, data_dir=folder)
    beat = Heartbeat(settings, send=lambda message: None, device="cpu")
    with session_scope(url) as session:
        token = create_token(session, name="alice", scope="submit")
    original = tasks.dispatch_now
    tasks.dispatch_now = lambda settings, messages: None
    try:
        with TestClient(create_app(settings)) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            yield client, settings, beat
    finally:
        tasks.dispatch_now = original


def graph_files(net) -> dict:
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    return {"graph": ("g.json", json.dumps(describe(net)).encode()),
            "weights": ("w.safetensors", save_safetensors(state))}


def onnx_files(net) -> dict:
    buffer = io.BytesIO()
    net.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces that it is legacy
        torch.onnx.export(net, (torch.randn(2, *INPUT_SHAPE),), buffer, dynamo=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          training=torch.onnx.TrainingMode.PRESERVE)
    return {"onnx": ("net.onnx", buffer.getvalue())}


def pushed_ready(client, settings, beat, name: str, files: dict) -> dict:
    response = client.post("/api/v1/models", files=files,
                           data={"name": name, "input_shape": SHAPE})
    assert response.status_code == 201, response.text
    with session_scope(settings.resolved_database_url) as session:
        version_id = session.scalar(select(ModelVersion.id).join(UserModel)
                                    .where(UserModel.name == name))
    status = pushed_models.inspect_model(version_id, settings=settings, beat=beat)
    version = client.get(f"/api/v1/models/{name}").json()["versions"][0]
    assert status == "ready", version["error"]
    return version["inspection"]


@pytest.mark.parametrize("architecture, upload", [
    ("mobilenetish", "graph"), ("densenetish", "graph"), ("tinyvit", "graph"),
    ("mobilenetish", "onnx"),
])
def test_a_pushed_architecture_is_pruned_compacted_and_exported(stack, architecture, upload):
    client, settings, beat = stack
    name = f"{architecture}-{upload}"
    net = make(architecture)
    inspection = pushed_ready(client, settings, beat, name,
                              graph_files(net) if upload == "graph" else onnx_files(net))
    assert inspection["groups"] > 0 and inspection["num_classes"] == NUM_CLASSES
    data = load_dataset("synthetic", synthetic_shape=INPUT_SHAPE,
                        synthetic_classes=NUM_CLASSES, synthetic_size=256)
    sdprun = {"method": "sdprun", "lr": 0.1, "c": SDPRUN_C[architecture], "mu": 0.6}
    for method, values in (("l1-filter", L1_FILTER), ("sdprun", sdprun)):
        response = client.post("/api/v1/jobs", json={"model": name, **DATA, **values})
        assert response.status_code == 201, response.text
        job_id = response.json()["id"]
        assert tasks.run_job(job_id, settings=settings, beat=beat) == "succeeded"
        with session_scope(settings.resolved_database_url) as session:
            summary = session.get(Job, job_id).summary
        assert "compact_error" not in summary, summary["compact_error"]
        compact = summary["compact"]
        # The small network computes what the pruned one does (compact() checks it on a
        # random batch): the same accuracy on every test sample.
        assert compact["accuracy_equal"], compact
        assert compact["compact_flops"] < compact["dense_flops"]  # something was removed
        if method == "l1-filter":
            assert summary["remaining_flops"] <= 0.72, summary["remaining_flops"]
        loaded = load_compact(export_dir(settings.resolved_artifact_dir, job_id))
        assert evaluate(loaded, data, torch.device("cpu"))["test_accuracy"] == pytest.approx(
            compact["compact_test_accuracy"], abs=1e-9)


def test_an_onnx_file_with_open_sides_needs_and_uses_the_declared_input_shape(stack):
    client, settings, beat = stack
    net = make("mobilenetish").eval()
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(2, *INPUT_SHAPE),), buffer, dynamo=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}})
    files = {"onnx": ("open.onnx", buffer.getvalue())}
    refused = client.post("/api/v1/models", files=files, data={"name": "open-sides"})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["field"] == "input_shape"
    inspection = pushed_ready(client, settings, beat, "open-sides", files)
    assert inspection["flops"] > 0 and inspection["num_classes"] == NUM_CLASSES
