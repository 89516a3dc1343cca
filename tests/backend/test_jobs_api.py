from sqlalchemy import func, select

from backend.db import session_scope
from backend.models import Job, JobChange, JobTag

JOBS = "/api/v1/jobs"


def count_jobs(settings):
    with session_scope(settings.resolved_database_url) as session:
        return session.scalar(select(func.count()).select_from(Job))


def test_submit_uses_the_train_flag_names_and_fills_defaults(client, make_token):
    headers = make_token("submit")
    response = client.post(JOBS, headers=headers, json={
        "model": "mlp", "dataset": "digits", "method": "sdprun", "epochs": 5,
        "name": "demo", "tags": ["quick", "digits"]})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "queued" and job["config"]["epochs"] == 5
    assert job["config"]["c"] == 0.015 and job["config"]["mlp_widths"] == [300, 100]
    assert job["tags"] == ["digits", "quick"] and job["owner"].startswith("submit-")
    detail = client.get(f"{JOBS}/{job['id']}", headers=headers).json()
    assert [h["status"] for h in detail["history"]] == ["queued"]


def test_bad_config_is_a_422_naming_field_and_range_and_stores_nothing(client, make_token,
                                                                       settings):
    headers = make_token("submit")
    before = count_jobs(settings)
    cases = [
        ({"epochs": 0}, "epochs", "in [1, 10000]"),
        ({"method": "adam"}, "method", "one of sgd, grda, sdprun, l1-filter, spp, increg, gfs, "
                                       "eigendamage, pivot"),
        ({"mu": 1.5}, "mu", "in (0.0, 1.0)"),
        ({"mlp_widths": [300, 0]}, "mlp_widths.1", "in [1, 65536]"),
        ({"momentum": 0.9}, "momentum", None),
        ({"method": "l1-filter", "prune_start": 0.8}, "prune_end", None),
        ({"checkpoint_dir": "/etc"}, "checkpoint_dir", None),
        ({"optimizer": "adam"}, "optimizer", None),
    ]
    for body, field, allowed in cases:
        response = client.post(JOBS, headers=headers, json=body)
        assert response.status_code == 422, body
        detail = response.json()["detail"][0]
        assert detail["field"] == field, response.json()
        assert detail.get("allowed") == allowed
    assert client.post(JOBS, headers=headers, content=b"{not json",
                       ).status_code == 422
    huge = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    assert client.post(JOBS, headers={**headers, "content-type": "application/json"},
                       content=huge).status_code == 413
    # Chunked, without a Content-Length: counted as it arrives; a small chunked body passes.
    chunked = client.post(JOBS, headers={**headers, "content-type": "application/json"},
                          content=iter([huge[:600_000], huge[600_000:]]))
    assert chunked.status_code == 413 and "over 1048576 bytes" in chunked.json()["detail"]
    small = client.post(JOBS, headers={**headers, "content-type": "application/json"},
                        content=iter([b'{"epochs": ', b'0}']))
    assert small.status_code == 422 and small.json()["detail"][0]["field"] == "epochs"
    assert count_jobs(settings) == before


def test_auth_scopes_and_ownership(client, make_token):
    reader, alice, bob, admin = (make_token("read"), make_token("submit"),
                                 make_token("submit"), make_token("admin"))
    assert client.get(JOBS).status_code == 401
    assert client.get(JOBS, headers={"Authorization": "Bearer pb_nope_nope"}).status_code == 401
    assert client.post(JOBS, headers=reader, json={}).status_code == 403
    job = client.post(JOBS, headers=alice, json={"epochs": 1}).json()
    assert client.get(f"{JOBS}/{job['id']}", headers=reader).status_code == 200
    refused = client.post(f"{JOBS}/{job['id']}/cancel", headers=bob)
    assert refused.status_code == 403 and "belongs to" in refused.json()["detail"]
    assert client.post(f"{JOBS}/{job['id']}/cancel", headers=admin).status_code == 200
    assert client.get("/api/v1/healthz").json() == {"status": "ok", "database": "ok",
                                                     "broker": "ok"}


def test_cookie_session_for_browsers(client, make_token):
    token = make_token("read")["Authorization"].split()[1]
    assert client.post("/api/v1/session", json={"token": "pb_bad_bad"}).status_code == 401
    response = client.post("/api/v1/session", json={"token": token})
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get(JOBS).status_code == 200  # the cookie authenticates
    client.delete("/api/v1/session")
    assert client.get(JOBS).status_code == 401


def test_cancel_retry_delete_transitions(client, make_token, settings):
    headers = make_token("admin")
    job = client.post(JOBS, headers=headers, json={"epochs": 1}).json()
    url = f"{JOBS}/{job['id']}"
    assert client.post(f"{url}/retry", headers=headers).status_code == 409  # still queued
    cancelled = client.post(f"{url}/cancel", headers=headers).json()
    assert cancelled["status"] == "cancelled"
    again = client.post(f"{url}/cancel", headers=headers)
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    assert client.post(f"{url}/retry", headers=headers).json()["status"] == "queued"
    assert client.delete(url, headers=headers).status_code == 204
    assert client.get(url, headers=headers).status_code == 404
    with session_scope(settings.resolved_database_url) as session:
        assert session.scalar(select(func.count()).select_from(JobChange)
                              .where(JobChange.job_id == job["id"])) == 0
        assert session.scalar(select(func.count()).select_from(JobTag)
                              .where(JobTag.job_id == job["id"])) == 0


def test_list_filters_and_pages(client, make_token):
    headers = make_token("submit")
    owner = client.get("/api/v1/session", headers=headers).json()["name"]
    ids = [client.post(JOBS, headers=headers, json={"epochs": 1, "tags": [tag],
                                                    "method": method}).json()["id"]
           for tag, method in (("a", "sgd"), ("b", "sdprun"), ("a", "grda"))]
    mine = {"owner": owner}
    listed = client.get(JOBS, headers=headers, params=mine).json()
    assert listed["total"] == 3 and [j["id"] for j in listed["items"]] == ids[::-1]
    tagged = client.get(JOBS, headers=headers, params={**mine, "tag": "a"}).json()
    assert sorted(j["id"] for j in tagged["items"]) == [ids[0], ids[2]]
    found = client.get(JOBS, headers=headers, params={**mine, "q": "GRDA"}).json()
    assert [j["id"] for j in found["items"]] == [ids[2]]
    page = client.get(JOBS, headers=headers, params={**mine, "limit": 2, "offset": 2}).json()
    assert [j["id"] for j in page["items"]] == [ids[0]]
    assert client.get(JOBS, headers=headers, params={"status": "bogus"}).status_code == 422
    assert client.get(f"{JOBS}/999999", headers=headers).json() == {
        "detail": "job 999999 not found"}


def test_config_spec_lists_client_fields_only(client, make_token):
    document = client.get("/api/v1/config-spec", headers=make_token("read")).json()
    fields = document["schema"]["properties"]
    assert fields["epochs"]["minimum"] == 1
    assert fields["method"]["enum"][:3] == ["sgd", "grda", "sdprun"]
    assert fields["valley_interval"]["x-requires"] == {"field": "reference", "one_of": ["sgd"]}
    for server_field in ("checkpoint_dir", "export_dir", "device"):
        assert server_field not in fields
    assert document["limits"]["max_model_params"]["value"] == 100_000_000


def test_cancel_and_delete_see_a_claim_made_after_they_read_the_job(client, make_token,
                                                                     settings):
    from sqlalchemy import update

    from backend.services import jobs as service

    job_id = client.post(JOBS, headers=make_token(), json={"epochs": 1}).json()["id"]
    url = settings.resolved_database_url
    with session_scope(url) as session:
        stale = session.get(Job, job_id)  # read while queued ...
        with session_scope(url) as worker:  # ... then a worker claims it
            worker.execute(update(Job).where(Job.id == job_id).values(status="running"))
        service.request_cancel(session, stale)
        assert stale.status == "running" and stale.cancel_requested
        try:
            service.delete_job(session, stale, settings.resolved_artifact_dir)
        except service.IllegalTransition as error:
            assert "is running" in str(error)
        else:
            raise AssertionError("deleted a running job")


def test_malformed_stream_cursors_start_from_now(client, make_token, settings):
    headers = make_token()
    job_id = client.post(JOBS, headers=headers, json={"epochs": 1}).json()["id"]
    client.post(f"{JOBS}/{job_id}/cancel", headers=headers)
    for params, extra in (({"after": "m99999999999999999999.l0.c0"}, {}),
                          ({}, {"Last-Event-ID": "\u00b2".encode("latin-1")})):
        with client.stream("GET", f"{JOBS}/{job_id}/events", params=params,
                           headers={**headers, **extra}) as response:
            kinds = [line for line in response.iter_lines() if line.startswith("event:")]
        assert kinds == ["event: status", "event: end"]
