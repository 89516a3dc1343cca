"""POST/GET /jobs/{id}/analyses and the artifact downloads, on PostgreSQL and SQLite."""

import hashlib

from sqlalchemy import func, insert, select, update

from backend.db import session_scope
from backend.models import Analysis, Artifact, Job
from backend.services.artifacts import export_dir

JOBS = "/api/v1/jobs"
TWIN_JOB = {"model": "mlp", "mlp_widths": [32, 16], "epochs": 2, "reference": "sgd"}


def submit(client, headers, body):
    response = client.post(JOBS, headers=headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def set_status(settings, job_id, status):
    with session_scope(settings.resolved_database_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(status=status))


def count_analyses(settings):
    with session_scope(settings.resolved_database_url) as session:
        return session.scalar(select(func.count()).select_from(Analysis))


def test_an_analysis_of_a_finished_twin_job_is_queued_with_its_options(client, make_token,
                                                                       settings):
    headers = make_token("submit")
    job_id = submit(client, headers, {**TWIN_JOB, "analyses": ["linear", "bezier"]})
    set_status(settings, job_id, "succeeded")

    response = client.post(f"{JOBS}/{job_id}/analyses", headers=headers, json={"points": 61})
    assert response.status_code == 201, response.text
    analysis = response.json()
    assert analysis["status"] == "queued" and analysis["reference_job_id"] is None
    # Without kinds, the job's own `analyses` field decides.
    assert analysis["options"]["kinds"] == ["linear", "bezier"]
    assert analysis["options"]["points"] == 61
    listed = client.get(f"{JOBS}/{job_id}/analyses", headers=make_token("read")).json()
    assert [a["id"] for a in listed] == [analysis["id"]]
    # An empty body is fine too.
    assert client.post(f"{JOBS}/{job_id}/analyses", headers=headers).status_code == 201
    # No worker reads this test's queue: three are now waiting, and a fourth is refused.
    assert client.post(f"{JOBS}/{job_id}/analyses", headers=headers).status_code == 201
    response = client.post(f"{JOBS}/{job_id}/analyses", headers=headers)
    assert response.status_code == 409 and "3 analyses queued or running" in response.text


def test_a_second_finished_job_can_be_the_reference(client, make_token, settings):
    headers = make_token("submit")
    pruned = submit(client, headers, {"model": "mlp", "mlp_widths": [32, 16]})
    sgd = submit(client, headers, {"model": "mlp", "mlp_widths": [32, 16], "method": "sgd"})
    other_shape = submit(client, headers, {"model": "mlp", "mlp_widths": [64], "method": "sgd"})
    for job_id in (pruned, sgd, other_shape):
        set_status(settings, job_id, "succeeded")
    response = client.post(f"{JOBS}/{pruned}/analyses", headers=headers,
                           json={"reference_job_id": sgd, "kinds": ["hessian"]})
    assert response.status_code == 201, response.text
    assert response.json()["reference_job_id"] == sgd

    response = client.post(f"{JOBS}/{pruned}/analyses", headers=headers,
                           json={"reference_job_id": other_shape})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["field"] == "reference_job_id" and "mlp_widths" in detail["message"]


def test_bad_analysis_requests_are_refused_and_store_nothing(client, make_token, settings):
    headers = make_token("submit")
    no_twin = submit(client, headers, {"model": "mlp", "mlp_widths": [32, 16]})
    running = submit(client, headers, TWIN_JOB)
    finished = submit(client, headers, TWIN_JOB)
    set_status(settings, no_twin, "succeeded")
    set_status(settings, running, "running")
    set_status(settings, finished, "succeeded")
    before = count_analyses(settings)

    response = client.post(f"{JOBS}/{no_twin}/analyses", headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "reference_job_id"
    assert "no SGD twin" in response.json()["detail"][0]["message"]
    response = client.post(f"{JOBS}/{running}/analyses", headers=headers)
    assert response.status_code == 409 and "running" in response.json()["detail"]
    for body, field in [({"points": 1}, "points"), ({"kinds": ["contour"]}, "kinds.0"),
                        ({"hessian_k": 0}, "hessian_k"), ({"reference_job_id": 99999},
                                                          "reference_job_id"),
                        ({"reference_job_id": finished}, "reference_job_id"),
                        ({"colour": "red"}, "colour")]:
        response = client.post(f"{JOBS}/{finished}/analyses", headers=headers, json=body)
        assert response.status_code == 422, body
        assert response.json()["detail"][0]["field"] == field, response.json()
    assert client.post(f"{JOBS}/{finished}/analyses", headers=make_token("read")
                       ).status_code == 403
    assert client.post(f"{JOBS}/99999/analyses", headers=headers).status_code == 404
    assert count_analyses(settings) == before


def test_artifacts_download_with_their_sha256_and_a_changed_file_is_refused(
        client, make_token, settings):
    reader, owner = make_token("read"), make_token("submit")
    headers = owner  # downloads are the owner's (or an admin's); the list is anyone's
    job_id = submit(client, owner, {"model": "mlp"})
    folder = export_dir(settings.resolved_artifact_dir, job_id)
    folder.mkdir(parents=True)
    content = b"weights" * 1000
    (folder / "model.safetensors").write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    with session_scope(settings.resolved_database_url) as session:
        session.execute(insert(Artifact).values(job_id=job_id, name="model.safetensors",
                                                format="safetensors", sha256=digest,
                                                bytes=len(content)))
    listed = client.get(f"{JOBS}/{job_id}/artifacts", headers=reader).json()
    assert [(a["name"], a["sha256"], a["bytes"]) for a in listed] == [
        ("model.safetensors", digest, len(content))]
    response = client.get(listed[0]["url"], headers=headers)
    assert response.status_code == 200 and response.content == content
    assert response.headers["x-content-sha256"] == digest
    assert client.get(listed[0]["url"], headers=make_token("admin")).content == content
    for other in (reader, make_token("submit")):
        refused = client.get(listed[0]["url"], headers=other)
        assert refused.status_code == 403 and "owner or an admin" in refused.json()["detail"]

    (folder / "model.safetensors").write_bytes(content[:-1] + b"X")
    response = client.get(listed[0]["url"], headers=headers)
    assert response.status_code == 410 and "SHA-256" in response.json()["detail"]
    (folder / "model.safetensors").unlink()
    assert client.get(listed[0]["url"], headers=headers).status_code == 410
    assert client.get(f"{JOBS}/{job_id}/artifacts/model.pt", headers=headers).status_code == 404
    assert client.get(f"{JOBS}/{job_id}/artifacts/..%2F..%2Fsecret",
                      headers=headers).status_code == 404
