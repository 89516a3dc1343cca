"""Accepted means runnable, at the door: each config that used to be accepted and then fail on
a worker (or exhaust it) is now a 422 naming the field, and nothing is stored."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from backend.db import session_scope
from backend.main import create_app
from backend.models import Analysis, Job, Worker, utcnow
from pruneboard.spec.service import ANALYSIS_LIMITS

JOBS = "/api/v1/jobs"
CIFAR_FOLDER = {"dataset": "cifar10", "data_dir": "cifar-small", "input_shape": [3, 32, 32],
                "num_classes": 10, "train_size": 100}


def count(settings, table=Job):
    with session_scope(settings.resolved_database_url) as session:
        return session.scalar(select(func.count()).select_from(table))


@pytest.fixture
def add_worker(settings):
    """A worker row reporting ``datasets`` (the PostgreSQL database is shared by the session,
    so the folder names are the test's own and the row is removed afterwards)."""
    added = []

    def add(datasets, *, heartbeat_at=None, plugins=None):
        worker_id = f"host:{uuid.uuid4().hex[:8]}:cpu"
        with session_scope(settings.resolved_database_url) as session:
            now = utcnow()
            session.add(Worker(id=worker_id, host="host", device="cpu", datasets=datasets,
                               plugins=plugins, started_at=now,
                               heartbeat_at=heartbeat_at or now))
        added.append(worker_id)

    yield add
    with session_scope(settings.resolved_database_url) as session:
        session.execute(delete(Worker).where(Worker.id.in_(added)))


def folder(name):
    return {**CIFAR_FOLDER, "data_dir": name}


def refused(client, headers, body=None, *, content=None, path=JOBS):
    response = (client.post(path, headers={**headers, "content-type": "application/json"},
                            content=content) if content is not None
                else client.post(path, headers=headers, json=body))
    assert response.status_code == 422, (body, response.text)
    return response.json()["detail"]


@pytest.mark.parametrize("body, field, words", [
    ({"mu": 1.0}, "mu", "must be in (0.0, 1.0), got 1.0"),
    ({"dataset": "synthetic", "synthetic_shape": [1, 8]}, "synthetic_shape.2", "required"),
    ({"model": "resnet20", "dataset": "cifar10"}, "data_dir", "read from a data folder"),
    ({"model": "resnet20", "dataset": "cifar10", "data_dir": "/srv/data/cifar"}, "data_dir",
     "no live worker has a cifar10 folder named '/srv/data/cifar'"),
    ({"mlp_widths": [65536, 65536]}, "mlp_widths", "max_model_params"),
    ({"dataset": "synthetic", "synthetic_size": 10_000_000}, "epochs", "max_total_steps"),
    ({"dataset": "synthetic", "synthetic_size": 1_000_000, "synthetic_shape": [3, 32, 32],
      "epochs": 1, "batch_size": 1024},
     "synthetic_size", "max_synthetic_values"),
    ({"batch_size": 65536}, "batch_size", "at most the 1437 training samples of digits"),
    ({"epochs": True}, "epochs", "valid integer, got True"),
    ({"epochs": "5"}, "epochs", "valid integer, got '5'"),
    ({"seed": 2**70}, "seed", "must be in [0, 2147483647]"),
    ({"name": "a\x00b"}, "name", "NUL"),
    ({"tags": ["x" * 51]}, "tags.0", "at most 50"),
    ({"device": "cuda"}, "device", "set by the worker"),
    ({"export_dir": "/tmp/x"}, "export_dir", "set by the worker"),
    ({"model": "vgg16-bn", "mlp_widths": [300, 100]}, "model", "at least 32x32"),
    ({"method": "sdprun", "weight_decay": 0.01}, "weight_decay", "read only by method sgd"),
    ({"dataset": "digits", "data_dir": "cifar-small"}, "data_dir", "needs dataset mnist"),
    ({"model": "resnet20", "dataset": "synthetic", "synthetic_shape": [1, 1, 1], "batch_size": 1,
      "mlp_widths": [300, 100]}, "batch_size", "BatchNorm over 1x1 maps"),
])
def test_what_a_worker_could_not_run_is_refused_at_the_door(client, make_token, settings, body,
                                                            field, words):
    before = count(settings)
    detail = refused(client, make_token("submit"), body)
    assert detail[0]["field"] == field and words in detail[0]["message"], detail
    assert count(settings) == before


def test_malformed_json_says_so_and_where(client, make_token):
    detail = refused(client, make_token("submit"), content=b'{"epochs": 3,, }')
    assert detail == [{"field": "body", "message": "the body is not valid JSON: key must be a "
                                                    "string at line 1 column 14"}]
    detail = refused(client, make_token("submit"), content=b"[1, 2]")
    assert detail[0]["field"] == "body"


def test_a_folder_a_live_worker_reports_is_accepted_and_its_size_bounds_the_batch(
        client, make_token, add_worker):
    headers = make_token("submit")
    name = f"cifar-{uuid.uuid4().hex[:6]}"
    add_worker([folder(name)])
    body = {"model": "resnet20", "dataset": "cifar10", "data_dir": name, "epochs": 1}
    assert client.post(JOBS, headers=headers, json=body).status_code == 201
    detail = refused(client, headers, {**body, "batch_size": 101})
    assert "at most the 100 training samples of cifar10" in detail[0]["message"]
    detail = refused(client, headers, {**body, "data_dir": "other"})
    assert name in detail[0]["message"].split("available: ")[1]
    document = client.get("/api/v1/config-spec", headers=headers).json()
    assert {**folder(name), "mixed_sizes": False} in document["datasets"]["folders"]
    presets = {p["id"]: p for p in document["presets"]}
    assert presets["vgg16-cifar10"]["available"]
    assert presets["vgg16-cifar10"]["values"]["data_dir"].startswith("cifar-")
    assert not presets["wrn-cifar100"]["available"]
    assert "no live worker reports a cifar100 folder" in presets["wrn-cifar100"][
        "disabled_reason"]


def test_a_folder_only_a_dead_worker_had_is_refused(client, make_token, settings, add_worker):
    from datetime import timedelta

    name = f"cifar-{uuid.uuid4().hex[:6]}"
    add_worker([folder(name)],
               heartbeat_at=utcnow() - timedelta(seconds=settings.heartbeat_timeout_s + 5))
    body = {"model": "resnet20", "dataset": "cifar10", "data_dir": name}
    detail = refused(client, make_token("submit"), body)
    assert f"no live worker has a cifar10 folder named {name!r}" in detail[0]["message"]


LIMIT_CASES = [
    ("max_model_params", 500_000, {"model": "resnet56", "dataset": "synthetic",
                                     "synthetic_shape": [3, 8, 8]}, "model"),
    ("max_model_flops", 10_000_000, {"model": "resnet20", "dataset": "synthetic",
                                     "synthetic_shape": [3, 16, 16]}, "model"),
    ("max_total_steps", 1000, {"epochs": 100}, "epochs"),
    ("max_activation_bytes", 2**20, {"model": "cnn-small", "mlp_widths": [300, 100]},
     "batch_size"),
    ("max_synthetic_values", 100_000, {"dataset": "synthetic", "synthetic_size": 2048},
     "synthetic_size"),
]


@pytest.mark.parametrize("limit, value, body, field", LIMIT_CASES)
def test_each_service_limit_is_a_setting_and_names_the_field(settings, make_token, limit,
                                                             value, body, field):
    limited = settings.model_copy(update={"limits": settings.limits.model_copy(
        update={limit: value})})
    with TestClient(create_app(limited)) as client:
        headers = make_token("submit")
        detail = refused(client, headers, body)
        assert detail[0]["field"] == field and f"at most {value:,} ({limit})" in detail[0][
            "message"]
        document = client.get("/api/v1/config-spec", headers=headers).json()
        assert document["limits"][limit]["value"] == value


@pytest.mark.parametrize("field", ANALYSIS_LIMITS)
def test_analysis_limits_name_the_field(settings, make_token, field):
    limit = f"max_{field}"
    with session_scope(settings.resolved_database_url) as session:
        job = Job(owner="x", status="succeeded", model="mlp", dataset="digits",
                  method="sdprun", config={"reference": "sgd", "analyses": ["linear"]})
        session.add(job)
        session.flush()
        job_id = job.id
    limited = settings.model_copy(update={"limits": settings.limits.model_copy(
        update={limit: 100})})
    before = count(settings, Analysis)
    with TestClient(create_app(limited)) as client:
        detail = refused(client, make_token("admin"), {field: 101},
                         path=f"{JOBS}/{job_id}/analyses")
        assert detail[0]["field"] == field and "at most 100" in detail[0]["message"]
        schema = client.get("/api/v1/config-spec", headers=make_token("read")).json()[
            "analysis_schema"]
        assert schema["properties"][field]["maximum"] == 100
    assert count(settings, Analysis) == before


@pytest.mark.parametrize("path", [f"{JOBS}/{2**70}", f"{JOBS}?offset={2**70}", f"{JOBS}?q=a%00b",
                                  f"{JOBS}?tag=%00", f"{JOBS}/ID/metrics?from_step={2**64}"])
def test_out_of_range_ids_and_nul_bytes_in_queries_are_422_not_500(client, make_token, path):
    job_id = client.post(JOBS, headers=make_token(), json={"epochs": 1}).json()["id"]
    response = client.get(path.replace("ID", str(job_id)), headers=make_token("read"))
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("path, body", [
    ("/api/v1/session", b'{"token": "pb_\\ud800_x"}'),
    ("/api/v1/session", b'{"token": "pb_\\u0000abc_def"}'),
    ("/api/v1/tokens", b'{"name": "\\ud800x", "scope": "read"}'),
    ("/api/v1/tokens", b'{"name": "a\\u0000b", "scope": "read"}'),
])
def test_nul_bytes_and_lone_surrogates_in_small_bodies_are_refused_not_500(client, make_token,
                                                                          path, body):
    response = client.post(path, content=body, headers={**make_token("admin"),
                                                        "content-type": "application/json"})
    assert response.status_code in (401, 422), response.text


def test_a_cookie_with_a_nul_byte_is_no_token(client, make_token):
    client.cookies.set("pruneboard_session", "ps_a\x00b_c" + "x" * 40)
    assert client.get(JOBS).status_code == 401
    admin = make_token()
    job_id = client.post(JOBS, headers=admin, json={"epochs": 1}).json()["id"]
    # An admin may download any job's files: the NUL in the path is what refuses it.
    for path in (f"{JOBS}/{job_id}/metrics?keys=a%00", f"{JOBS}/{job_id}/artifacts/a%00b"):
        assert client.get(path, headers=admin).status_code == 422


def test_a_jobs_own_config_can_be_submitted_again(client, make_token):
    headers = make_token("submit")
    job = client.post(JOBS, headers=headers, json={"epochs": 2, "method": "sgd",
                                                   "momentum": 0.9}).json()
    again = client.post(JOBS, headers=headers, json=job["config"])
    assert again.status_code == 201, again.text
    assert again.json()["config"] == job["config"]


def test_a_plugin_name_is_accepted_only_while_a_live_worker_has_it(client, make_token, settings,
                                                                   add_worker):
    from datetime import timedelta

    headers = make_token("submit")
    suffix = uuid.uuid4().hex[:6]
    model, dataset = f"team-net-{suffix}", f"team-data-{suffix}"
    body = {"model": model, "dataset": dataset, "epochs": 1}
    detail = refused(client, headers, body)
    assert {d["field"] for d in detail} == {"model", "dataset"}, detail
    add_worker([], plugins={"models": [model], "datasets": [dataset]},
               heartbeat_at=utcnow() - timedelta(seconds=settings.heartbeat_timeout_s + 5))
    assert {d["field"] for d in refused(client, headers, body)} == {"model", "dataset"}
    add_worker([], plugins={"models": [model], "datasets": [dataset]})
    response = client.post(JOBS, headers=headers, json=body)
    assert response.status_code == 201, response.text
    # A plugin's model has no versions on the service.
    detail = refused(client, headers, {**body, "model_version": 1})
    assert detail[0]["field"] == "model_version", detail


def test_an_image_folder_of_mixed_sizes_needs_image_size(client, make_token, add_worker):
    headers = make_token("submit")
    name = f"photos-{uuid.uuid4().hex[:6]}"
    add_worker([{"dataset": "imagefolder", "data_dir": name, "input_shape": [3, 40, 30],
                 "num_classes": 4, "train_size": 200, "mixed_sizes": True}])
    body = {"model": "cnn-small", "dataset": "imagefolder", "data_dir": name, "epochs": 1}
    detail = refused(client, headers, body)
    assert detail[0]["field"] == "image_size" and "differ in size" in detail[0]["message"]
    response = client.post(JOBS, headers=headers, json={**body, "image_size": 16})
    assert response.status_code == 201, response.text
    # The facts follow the resize: the batch is checked against the folder's 200 images.
    assert "200 training samples" in refused(client, headers, {
        **body, "image_size": 16, "batch_size": 201})[0]["message"]
