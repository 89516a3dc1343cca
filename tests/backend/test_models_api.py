"""POST/GET/DELETE /models on both databases: what an upload is checked for before anything runs,
and that a refusal stores nothing. The files are real: graph JSON from the engine's own
``describe``, weights written by safetensors, and the ways they go wrong in the wild."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save as save_safetensors
from sqlalchemy import func, select
from torch import nn

from backend.db import session_scope
from backend.main import create_app
from backend.models import ModelFile, ModelVersion, UserModel
from pruning.compact.graphjson import describe

MODELS = "/api/v1/models"


def small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


def model_files(net: nn.Module | None = None) -> tuple[bytes, bytes]:
    net = net or small_net()
    graph = json.dumps(describe(net)).encode()
    weights = save_safetensors({k: v.contiguous() for k, v in net.state_dict().items()})
    return graph, weights


def unique(prefix: str = "net") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def push(client, headers, name, *, graph=None, weights=None, data=None, files=None):
    graph_bytes, weight_bytes = model_files()
    files = files if files is not None else {
        "graph": ("net.json", graph if graph is not None else graph_bytes, "application/json"),
        "weights": ("net.safetensors", weights if weights is not None else weight_bytes,
                    "application/octet-stream")}
    return client.post(MODELS, headers=headers, files=files,
                       data={"name": name, "input_shape": "1,8,8", **(data or {})})


def stored_versions(settings, name) -> int:
    with session_scope(settings.resolved_database_url) as session:
        return session.scalar(select(func.count()).select_from(ModelVersion).join(UserModel)
                              .where(UserModel.name == name))


def test_a_push_is_stored_as_sent_and_queued_for_a_worker(client, make_token, settings):
    headers = make_token("submit")
    name = unique()
    graph, weights = model_files()
    response = push(client, headers, name, graph=graph, weights=weights,
                    data={"weights_sha256": hashlib.sha256(weights).hexdigest()})
    assert response.status_code == 201, response.text
    version = response.json()
    assert (version["version"], version["status"], version["format"]) == (1, "queued", "graph")
    assert version["input_shape"] == [1, 8, 8] and version["has_weights"]
    assert {f["kind"]: f["sha256"] for f in version["files"]} == {
        "graph": hashlib.sha256(graph).hexdigest(), "weights": hashlib.sha256(weights).hexdigest()}
    with session_scope(settings.resolved_database_url) as session:
        row = session.scalar(select(ModelVersion).join(UserModel).where(UserModel.name == name))
        assert row.dispatched_at is not None or row.status == "queued"  # the outbox has it
        data = session.scalar(select(ModelFile.data).where(ModelFile.version_id == row.id,
                                                           ModelFile.kind == "weights"))
        assert data == weights
    # Pushing the name again makes version 2; the list shows the newest.
    assert push(client, headers, name).json()["version"] == 2
    listed = {m["name"]: m for m in client.get(MODELS, headers=headers).json()["models"]}
    assert listed[name]["versions"] == 2 and listed[name]["latest"]["version"] == 2
    detail = client.get(f"{MODELS}/{name}", headers=headers).json()
    assert [v["version"] for v in detail["versions"]] == [2, 1]


@pytest.mark.parametrize("mutate, field, message", [
    (lambda g: g.replace(b'"torch.flatten"', b'"builtins.eval"'), "graph", "builtins.eval"),
    (lambda g: g.replace(b'"Conv2d"', b'"Subprocess"', 1), "graph", "Subprocess"),
    (lambda g: g[:len(g) // 2], "graph", "not JSON"),
])
def test_a_graph_outside_the_whitelist_is_refused_naming_what(client, make_token, settings,
                                                             mutate, field, message):
    graph, _ = model_files(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 10)))
    graph = graph.replace(b'"call_module", "target": "1"', b'"call_function", "target": '
                                                         b'"torch.flatten"')
    name = unique()
    response = push(client, make_token("submit"), name, graph=mutate(graph))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail[0]["field"] == field and message in detail[0]["message"], detail
    assert stored_versions(settings, name) == 0


def test_truncated_or_tampered_weights_are_refused_and_nothing_is_stored(client, make_token,
                                                                        settings):
    headers = make_token("submit")
    _, weights = model_files()
    name = unique()
    truncated = push(client, headers, name, weights=weights[:-10])
    assert truncated.status_code == 422
    [entry] = truncated.json()["detail"]
    assert entry["field"] == "weights" and "not a complete safetensors file" in entry["message"]
    # One flipped byte in the tensor data keeps the file well-formed: its SHA-256 tells.
    tampered = weights[:-3] + bytes([weights[-3] ^ 0xFF]) + weights[-2:]
    response = push(client, headers, name, weights=tampered,
                    data={"weights_sha256": hashlib.sha256(weights).hexdigest()})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "weights_sha256"
    assert "tampered" in response.json()["detail"][0]["message"]
    assert stored_versions(settings, name) == 0


def test_names_that_collide_are_refused(client, make_token, settings):
    owner, other = make_token("submit"), make_token("submit")
    name = unique()
    assert push(client, owner, name).status_code == 201
    taken = push(client, other, name)
    assert taken.status_code == 409 and "already belongs to" in taken.json()["detail"]
    builtin = push(client, owner, "resnet20")
    assert builtin.status_code == 422 and builtin.json()["detail"][0]["field"] == "name"
    bad = push(client, owner, "Bad Name")
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "name"
    assert stored_versions(settings, name) == 1


def test_an_upload_over_the_limit_is_refused_before_it_is_read(make_token, settings):
    small = settings.model_copy(update={"max_model_upload_bytes": 10_000})
    name = unique()
    big = save_safetensors({"w": torch.zeros(10_000)})
    with TestClient(create_app(small)) as client:
        response = push(client, make_token("submit"), name, weights=big)
        assert response.status_code == 413 and "10000 bytes" in response.json()["detail"]
    assert stored_versions(settings, name) == 0


def test_missing_files_and_shapes_are_named(client, make_token):
    headers = make_token("submit")
    response = client.post(MODELS, headers=headers, data={"name": unique()},
                           files={"weights": ("w.safetensors", model_files()[1])})
    assert response.status_code == 422 and response.json()["detail"][0]["field"] == "graph"
    graph, _ = model_files()
    response = client.post(MODELS, headers=headers, data={"name": unique()},
                           files={"graph": ("g.json", graph)})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "input_shape"
    response = client.post(MODELS, headers=headers, data={"name": unique(),
                                                          "input_shape": "1,8"},
                           files={"graph": ("g.json", graph)})
    assert response.status_code == 422 and "input_shape" in response.text


def test_only_the_owner_or_an_admin_deletes_a_model(client, make_token):
    owner, other, admin = make_token("submit"), make_token("submit"), make_token("admin")
    name = unique()
    push(client, owner, name)
    assert client.delete(f"{MODELS}/{name}", headers=other).status_code == 403
    reader = make_token("read")
    assert client.delete(f"{MODELS}/{name}", headers=reader).status_code == 403
    assert client.delete(f"{MODELS}/{name}", headers=admin).status_code == 204
    assert client.get(f"{MODELS}/{name}", headers=owner).status_code == 404
    assert client.delete(f"{MODELS}/{name}", headers=owner).status_code == 404
