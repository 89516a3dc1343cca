"""Per-owner rules on PostgreSQL and SQLite: caps on queued + running jobs and analyses (429
with Retry-After), and who may start an analysis of whose job."""

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select, update

from backend.db import session_scope
from backend.main import create_app
from backend.models import Analysis, Job

JOBS = "/api/v1/jobs"
TWIN_JOB = {"model": "mlp", "mlp_widths": [32, 16], "epochs": 2, "reference": "sgd"}


@pytest.fixture
def capped(settings):
    """The API with a cap of 2 active jobs and 1 active analysis per owner."""
    small = settings.model_copy(update={"max_active_jobs_per_owner": 2,
                                        "max_active_analyses_per_owner": 1})
    with TestClient(create_app(small)) as test_client:
        yield test_client


def owner_token(make_token, scope="submit"):
    name = f"{scope}-{uuid.uuid4().hex[:8]}"
    return name, make_token(scope, name)


def submit(client, headers, body=None):
    response = client.post(JOBS, headers=headers, json=body or {"epochs": 1})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def set_status(settings, job_id, status):
    with session_scope(settings.resolved_database_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(status=status))


def jobs_of(settings, owner):
    with session_scope(settings.resolved_database_url) as session:
        return session.scalar(select(func.count()).select_from(Job).where(Job.owner == owner))


def assert_capped(response, owner, count, what, setting):
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == "30"
    detail = response.json()["detail"]
    assert f"owner {owner} has {count} queued or running {what}" in detail
    assert setting in detail and "wait for some to finish" in detail


def test_queued_and_running_jobs_are_capped_per_owner(capped, make_token, settings):
    alice, alice_headers = owner_token(make_token)
    _, bob_headers = owner_token(make_token)
    first = submit(capped, alice_headers)
    submit(capped, alice_headers)
    set_status(settings, first, "running")  # running counts as well as queued

    refused = capped.post(JOBS, headers=alice_headers, json={"epochs": 1})
    assert_capped(refused, alice, 2, "jobs", "PRUNEBOARD_MAX_ACTIVE_JOBS_PER_OWNER")
    assert "cancel them" in refused.json()["detail"]
    assert jobs_of(settings, alice) == 2  # nothing written
    submit(capped, bob_headers)  # another owner has a cap of their own

    set_status(settings, first, "succeeded")  # finished work frees its place
    submit(capped, alice_headers)


def test_admin_tokens_are_capped_too(capped, make_token):
    admin, headers = owner_token(make_token, "admin")
    submit(capped, headers)
    submit(capped, headers)
    assert_capped(capped.post(JOBS, headers=headers, json={"epochs": 1}), admin, 2, "jobs",
                  "PRUNEBOARD_MAX_ACTIVE_JOBS_PER_OWNER")


def test_a_retry_counts_against_the_jobs_owner(capped, make_token, settings):
    alice, alice_headers = owner_token(make_token)
    failed = submit(capped, alice_headers)
    set_status(settings, failed, "failed")
    busy = [submit(capped, alice_headers), submit(capped, alice_headers)]

    assert_capped(capped.post(f"{JOBS}/{failed}/retry", headers=alice_headers), alice, 2,
                  "jobs", "PRUNEBOARD_MAX_ACTIVE_JOBS_PER_OWNER")
    # An admin retrying it queues it for alice: her cap, not the admin's.
    admin_retry = capped.post(f"{JOBS}/{failed}/retry", headers=make_token("admin"))
    assert_capped(admin_retry, alice, 2, "jobs", "PRUNEBOARD_MAX_ACTIVE_JOBS_PER_OWNER")
    assert capped.get(f"{JOBS}/{failed}", headers=alice_headers).json()["status"] == "failed"

    assert capped.post(f"{JOBS}/{busy[0]}/cancel", headers=alice_headers).status_code == 200
    retried = capped.post(f"{JOBS}/{failed}/retry", headers=alice_headers)
    assert retried.status_code == 200 and retried.json()["status"] == "queued"


def test_queued_and_running_analyses_are_capped_per_owner(capped, make_token, settings):
    alice, alice_headers = owner_token(make_token)
    first, second = submit(capped, alice_headers, TWIN_JOB), submit(capped, alice_headers,
                                                                    TWIN_JOB)
    for job_id in (first, second):
        set_status(settings, job_id, "succeeded")
    assert capped.post(f"{JOBS}/{first}/analyses", headers=alice_headers).status_code == 201
    refused = capped.post(f"{JOBS}/{second}/analyses", headers=alice_headers)
    assert_capped(refused, alice, 1, "analyses", "PRUNEBOARD_MAX_ACTIVE_ANALYSES_PER_OWNER")

    with session_scope(settings.resolved_database_url) as session:
        session.execute(update(Analysis).where(Analysis.job_id == first)
                        .values(status="succeeded"))
        # A row from before analyses had owners counts for the analysed job's owner.
        session.execute(insert(Analysis).values(job_id=second, options={}, status="running",
                                                owner=None, progress=0.0))
    assert_capped(capped.post(f"{JOBS}/{first}/analyses", headers=alice_headers), alice, 1,
                  "analyses", "PRUNEBOARD_MAX_ACTIVE_ANALYSES_PER_OWNER")


def test_analyses_follow_the_job_ownership_rules_and_references_are_reads(client, make_token,
                                                                          settings):
    _, alice = owner_token(make_token)
    _, bob = owner_token(make_token)
    alices = submit(client, alice, TWIN_JOB)
    bobs = submit(client, bob, {"model": "mlp", "mlp_widths": [32, 16], "method": "sgd"})
    for job_id in (alices, bobs):
        set_status(settings, job_id, "succeeded")

    refused = client.post(f"{JOBS}/{alices}/analyses", headers=bob)
    assert refused.status_code == 403 and "belongs to" in refused.json()["detail"]
    refused = client.post(f"{JOBS}/{alices}/analyses", headers=make_token("read"))
    assert refused.status_code == 403
    assert client.post(f"{JOBS}/{alices}/analyses", headers=make_token("admin")
                       ).status_code == 201
    # Comparing with someone else's job only reads it.
    response = client.post(f"{JOBS}/{alices}/analyses", headers=alice,
                           json={"reference_job_id": bobs})
    assert response.status_code == 201, response.text
    # Downloads are reads: any read token lists any job's files.
    assert client.get(f"{JOBS}/{alices}/artifacts", headers=make_token("read")
                      ).status_code == 200
