"""Input the database cannot hold is refused at the door (a 422 naming the field, never a 500),
on both databases: NUL bytes, over-long strings, integers past a column's range, bodies that are
not text; text search takes % and _ literally; every timestamp comes back in UTC."""

from __future__ import annotations

import uuid

import pytest

from backend.db import session_scope
from backend.services.ingest import insert_points
from backend.services.jobs import add_log

API = "/api/v1"
JOBS = f"{API}/jobs"


def new_job(client, headers, **body):
    response = client.post(JOBS, headers=headers, json={"epochs": 1, **body})
    assert response.status_code == 201, response.text
    return response.json()


def assert_refused(response, field):
    assert response.status_code == 422, response.text
    fields = [entry["field"] for entry in response.json()["detail"]]
    assert field in fields, response.json()
    return response.json()["detail"][fields.index(field)]["message"]


@pytest.mark.parametrize("method, path, body, field", [
    ("post", JOBS, {"name": "a\x00b"}, "name"),
    ("post", JOBS, {"tags": ["ok", "a\x00"]}, "tags.1"),
    ("post", JOBS, {"dataset": "mnist", "data_dir": "cifar\x00"}, "data_dir"),
    ("post", f"{API}/config-spec/forecast", {"name": "\x00"}, "name"),
    ("post", f"{API}/tokens", {"name": "a\x00b", "scope": "read"}, "name"),
    ("post", f"{API}/tokens", {"name": "nul-scope", "scope": "re\x00ad"}, "scope"),
    ("post", f"{API}/session", {"token": "pb_\x00"}, "token"),
    ("get", f"{JOBS}?q=a%00b", None, "q"),
    ("get", f"{JOBS}?owner=%00", None, "owner"),
    ("get", f"{JOBS}?tag=x%00", None, "tag"),
    ("get", f"{JOBS}/ID/metrics?keys=loss,%00", None, "keys"),
])
def test_a_nul_byte_anywhere_is_a_422_naming_the_field(client, make_token, method, path, body,
                                                       field):
    assert "NUL" in assert_refused(send(client, make_token("admin"), method, path, body), field)


@pytest.mark.parametrize("method, path, body, field", [
    ("post", JOBS, {"name": "x" * 201}, "name"),
    ("post", JOBS, {"tags": ["x" * 51]}, "tags.0"),
    ("post", JOBS, {"dataset": "mnist", "data_dir": "x" * 501}, "data_dir"),
    ("post", f"{API}/tokens", {"name": "x" * 101, "scope": "read"}, "name"),
    ("post", f"{API}/session", {"token": "pb_" + "x" * 300}, "token"),
    ("get", f"{JOBS}?q={'x' * 201}", None, "q"),
    ("get", f"{JOBS}?owner={'x' * 101}", None, "owner"),
    ("get", f"{JOBS}?tag={'x' * 51}", None, "tag"),
    ("get", f"{JOBS}/ID/artifacts/{'x' * 201}", None, "name"),
])
def test_an_over_long_string_is_a_422_naming_the_field(client, make_token, method, path, body,
                                                       field):
    assert_refused(send(client, make_token("admin"), method, path, body), field)


def send(client, headers, method, path, body):
    """``method path`` (ID: a new job's id) with ``body`` as JSON, if any."""
    path = path.replace("ID", str(new_job(client, headers)["id"]))
    return getattr(client, method)(path, headers=headers,
                                   **({"json": body} if body is not None else {}))


@pytest.mark.parametrize("path, field", [
    ("ID/metrics?from_step=2147483648", "from_step"),  # steps are 32-bit on PostgreSQL
    ("ID/metrics?max_points=1000001", "max_points"),
    (f"ID/logs?after_id={2**63}", "after_id"),
    (f"ID/logs?limit={2**63}", "limit"),
    (f"?offset={2**63}", "offset"),
    (f"?limit={2**31}", "limit"),
    (f"/{2**63}", "job_id"),
    (f"/{2**63}/metrics", "job_id"),
    ("/0", "job_id"),
])
def test_an_integer_past_its_columns_range_is_a_422(client, make_token, settings, path, field):
    headers = make_token("admin")
    job_id = new_job(client, headers)["id"]
    with session_scope(settings.resolved_database_url) as session:
        # With points stored, the series are really read: the step goes into a query.
        insert_points(session, job_id, [("loss", step, 1.0, 0.0) for step in range(10)])
    path = path.replace("ID", f"/{job_id}")
    assert_refused(client.get(f"{JOBS}{path}", headers=headers), field)


def test_the_largest_values_in_range_are_answered(client, make_token, settings):
    headers = make_token("admin")
    job_id = new_job(client, headers)["id"]
    with session_scope(settings.resolved_database_url) as session:
        insert_points(session, job_id, [("loss", 2**31 - 1, 1.0, 0.0), ("loss", 5, 2.0, 0.0)])
    metrics = client.get(f"{JOBS}/{job_id}/metrics", headers=headers,
                         params={"from_step": 2**31 - 1})
    assert metrics.status_code == 200, metrics.text
    assert metrics.json()["series"]["loss"] == {"steps": [2**31 - 1], "values": [1.0]}
    for path in (f"{JOBS}/{job_id}/logs?after_id={2**63 - 1}", f"{JOBS}?offset={2**63 - 1}"):
        assert client.get(path, headers=headers).status_code == 200, path
    assert client.get(f"{JOBS}/{2**63 - 1}", headers=headers).status_code == 404
    analysis = client.post(f"{JOBS}/{job_id}/analyses", headers=headers,
                           json={"reference_job_id": 2**63})
    assert_refused(analysis, "reference_job_id")


@pytest.mark.parametrize("path", [JOBS, f"{API}/tokens", f"{API}/session",
                                  f"{API}/config-spec/forecast"])
def test_a_body_that_is_not_utf8_is_a_422_not_a_400(client, make_token, path):
    response = client.post(path, content=b'{"name": "\xff\xfe"}',
                           headers={**make_token("admin"), "content-type": "application/json"})
    assert_refused(response, "body")


@pytest.mark.parametrize("body, field", [({"model": {}}, "model"), ({"method": []}, "method"),
                                         ({"model": {"a": 1}, "method": "grda"}, "model")])
def test_a_choice_given_as_an_object_is_a_422(client, make_token, body, field):
    assert_refused(client.post(JOBS, headers=make_token("admin"), json=body), field)


def test_text_search_takes_wildcards_literally(client, make_token):
    owner = f"like-{uuid.uuid4().hex[:8]}"
    headers = make_token("submit", name=owner)
    names = ["100% done", "a_b", "back\\slash", "plain"]
    for name in names:
        new_job(client, headers, name=name)

    def found(q):
        response = client.get(JOBS, headers=headers, params={"owner": owner, "q": q})
        assert response.status_code == 200, response.text
        return sorted(job["name"] for job in response.json()["items"])

    assert found("%") == ["100% done"]
    assert found("_") == ["a_b"]
    assert found("\\") == ["back\\slash"]
    assert found("0% D") == ["100% done"]  # still a case-insensitive substring search
    assert found("a%b") == [] and found("p_ain") == []
    assert found("") == sorted(names)


def is_utc(moment):
    return moment.endswith(("Z", "+00:00"))


def test_every_timestamp_comes_back_in_utc(client, make_token, settings):
    headers = make_token("admin")
    job = new_job(client, headers)
    with session_scope(settings.resolved_database_url) as session:
        add_log(session, job["id"], "hello")
    assert is_utc(job["created_at"]), job["created_at"]
    cancelled = client.post(f"{JOBS}/{job['id']}/cancel", headers=headers).json()
    assert is_utc(cancelled["finished_at"]), cancelled["finished_at"]
    read = client.get(f"{JOBS}/{job['id']}", headers=headers).json()
    assert is_utc(read["created_at"]) and all(is_utc(h["at"]) for h in read["history"])
    listed = client.get(JOBS, headers=headers).json()["items"]
    assert all(is_utc(item["created_at"]) for item in listed)
    logs = client.get(f"{JOBS}/{job['id']}/logs", headers=headers).json()["items"]
    assert logs and all(is_utc(line["created_at"]) for line in logs)
