"""Tokens (list, revoke, expiry), browser sessions (server-side ids that end at sign-out, with
their token, or on expiry) and the same-origin rule for cookie writes, on PostgreSQL and
SQLite."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from backend.api.deps import COOKIE_NAME
from backend.db import session_scope
from backend.models import ApiToken, BrowserSession

API = "/api/v1"
JOBS = f"{API}/jobs"
OWN = {"Origin": "http://testserver"}
FIELDS = {"name", "scope", "created_at", "last_used_at", "expires_at"}


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def token_of(headers):
    return headers["Authorization"].split()[1]


def sign_in(client, token_headers, **extra):
    client.cookies.clear()
    response = client.post(f"{API}/session", json={"token": token_of(token_headers)}, **extra)
    assert response.status_code == 200, response.text
    return client.cookies.get(COOKIE_NAME)


def sessions_of(settings, name):
    with session_scope(settings.resolved_database_url) as session:
        return session.scalar(select(func.count()).select_from(BrowserSession)
                              .join(ApiToken, ApiToken.id == BrowserSession.token_id)
                              .where(ApiToken.name == name))


def set_token(settings, name, **values):
    with session_scope(settings.resolved_database_url) as session:
        session.execute(update(ApiToken).where(ApiToken.name == name).values(**values))


def test_admins_list_every_token_and_others_only_their_own_never_a_hash(client, make_token,
                                                                        settings):
    admin, reader = unique("admin"), unique("reader")
    admin_headers, read_headers = make_token("admin", admin), make_token("read", reader)
    client.get(JOBS, headers=read_headers)  # sets last_used_at

    everyone = client.get(f"{API}/tokens", headers=admin_headers)
    assert everyone.status_code == 200
    listed = {t["name"]: t for t in everyone.json()}
    assert {admin, reader} <= set(listed)
    assert all(set(t) == FIELDS for t in listed.values())
    assert listed[reader]["scope"] == "read" and listed[reader]["last_used_at"] is not None
    assert listed[reader]["expires_at"] is None

    own = client.get(f"{API}/tokens", headers=read_headers).json()
    assert [t["name"] for t in own] == [reader]
    with session_scope(settings.resolved_database_url) as session:
        hashes = session.scalars(select(ApiToken.token_hash)).all()
    assert not any(h in everyone.text for h in hashes)
    assert token_of(read_headers) not in everyone.text


def test_revoking_a_token_ends_it_and_its_browser_sessions(client, make_token, settings):
    alice, bob = unique("alice"), unique("bob")
    admin, alice_headers, bob_headers = (make_token("admin"), make_token("submit", alice),
                                         make_token("submit", bob))
    refused = client.delete(f"{API}/tokens/{bob}", headers=alice_headers)
    assert refused.status_code == 403 and "only itself" in refused.json()["detail"]
    assert client.delete(f"{API}/tokens/{unique('nobody')}", headers=admin).status_code == 404

    cookie = sign_in(client, bob_headers)
    sign_in(client, bob_headers)  # a second browser
    assert sessions_of(settings, bob) == 2
    assert client.delete(f"{API}/tokens/{bob}", headers=admin).status_code == 204
    # Gone with the token, by the foreign key's ON DELETE CASCADE (on SQLite too).
    assert sessions_of(settings, bob) == 0
    client.cookies.clear()
    refused = client.get(JOBS, headers=bob_headers)
    assert refused.status_code == 401 and refused.json()["detail"] == "invalid token"
    client.cookies.set(COOKIE_NAME, cookie)
    assert client.get(JOBS).status_code == 401

    # A non-admin may revoke itself, by cookie too; the browser's cookie is dropped with it.
    sign_in(client, alice_headers)
    response = client.delete(f"{API}/tokens/{alice}", headers=OWN)
    assert response.status_code == 204
    assert COOKIE_NAME in response.headers["set-cookie"]
    assert client.get(JOBS, headers=alice_headers).status_code == 401
    assert alice not in {t["name"] for t in client.get(f"{API}/tokens", headers=admin).json()}


def test_a_token_can_be_made_to_expire_and_bad_expiries_are_422s(client, make_token,
                                                                 settings):
    admin = make_token("admin")
    cases = [
        ({"expires_in_days": 0}, "expires_in_days", "[1, 3650]"),
        ({"expires_in_days": 3651}, "expires_in_days", "[1, 3650]"),
        ({"expires_in_days": "soon"}, "expires_in_days", "integer"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at", "3650 days"),
        ({"expires_at": "9999-01-01T00:00:00Z"}, "expires_at", "3650 days"),
        ({"expires_in_days": 5, "expires_at": "2100-01-01T00:00:00Z"}, "expires_at", "not both"),
    ]
    for extra, field, words in cases:
        name = unique("exp")
        response = client.post(f"{API}/tokens", headers=admin,
                               json={"name": name, "scope": "read", **extra})
        assert response.status_code == 422, extra
        detail = response.json()["detail"][0]
        assert detail["field"] == field and words in detail["message"], (extra, detail)
        assert name not in client.get(f"{API}/tokens", headers=admin).text

    name = unique("week")
    made = client.post(f"{API}/tokens", headers=admin,
                       json={"name": name, "scope": "read", "expires_in_days": 7})
    assert made.status_code == 201, made.text
    ends = datetime.fromisoformat(made.json()["expires_at"])
    assert abs(ends - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=1)
    headers = {"Authorization": f"Bearer {made.json()['token']}"}
    assert client.get(JOBS, headers=headers).status_code == 200
    listed = client.get(f"{API}/tokens", headers=headers).json()[0]
    assert datetime.fromisoformat(listed["expires_at"]) == ends

    at = unique("dated")
    made = client.post(f"{API}/tokens", headers=admin,
                       json={"name": at, "scope": "read", "expires_at": "2030-06-01T12:00:00"})
    assert made.status_code == 201  # without a zone: UTC
    assert datetime.fromisoformat(made.json()["expires_at"]) == datetime(2030, 6, 1, 12,
                                                                         tzinfo=UTC)
    set_token(settings, name, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    refused = client.get(JOBS, headers=headers)
    assert refused.status_code == 401 and refused.json()["detail"].startswith(
        "token expired at ")


def test_sign_in_sets_a_session_id_that_sign_out_revokes_on_the_server(client, make_token):
    headers = make_token("read")
    cookie = sign_in(client, headers)
    assert cookie.startswith("ps_") and token_of(headers) not in cookie
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, cookie)
    assert client.get(f"{API}/session").status_code == 200
    assert client.delete(f"{API}/session", headers=OWN).status_code == 204
    client.cookies.set(COOKIE_NAME, cookie)  # replayed, as a copied cookie would be
    refused = client.get(JOBS)
    assert refused.status_code == 401 and "sign in again" in refused.json()["detail"]
    assert client.get(f"{API}/session").status_code == 401
    assert client.get(JOBS, headers=headers).status_code == 200  # the token itself lives on


def test_a_session_ends_with_its_token_or_its_own_age(client, make_token, settings):
    name = unique("ends")
    cookie = sign_in(client, make_token("read", name))
    assert client.get(JOBS).status_code == 200
    set_token(settings, name, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert client.get(JOBS).status_code == 401

    other = unique("aged")
    sign_in(client, make_token("read", other))
    with session_scope(settings.resolved_database_url) as session:
        token_id = session.scalar(select(ApiToken.id).where(ApiToken.name == other))
        session.execute(update(BrowserSession).where(BrowserSession.token_id == token_id)
                        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert client.get(JOBS).status_code == 401
    client.cookies.set(COOKIE_NAME, cookie)
    assert client.get(JOBS).status_code == 401


def test_cookie_writes_must_come_from_this_origin(client, make_token):
    headers = make_token("submit")
    sign_in(client, headers)
    body = {"epochs": 1}
    refused = client.post(JOBS, json=body)
    assert refused.status_code == 403 and "Origin" in refused.json()["detail"]
    for origin in ("http://testserver:8001", "https://testserver", "http://evil.example",
                   "null"):
        refused = client.post(JOBS, json=body, headers={"Origin": origin})
        assert refused.status_code == 403, origin
        assert "cross-origin" in refused.json()["detail"]
    assert client.post(JOBS, json=body, headers=OWN).status_code == 201
    assert client.post(JOBS, json=body, headers={"Origin": "http://TESTSERVER:80"}
                       ).status_code == 201
    # Without Origin, the Referer's origin counts; the Host header names this service.
    assert client.post(JOBS, json=body, headers={"Referer": "http://testserver/#/new"}
                       ).status_code == 201
    assert client.post(JOBS, json=body, headers={"Host": "pb.example:8443",
                                                 "Origin": "http://pb.example:8443"}
                       ).status_code == 201
    assert client.post(JOBS, json=body, headers={"Host": "pb.example:8443", **OWN}
                       ).status_code == 403
    # Reads and bearer requests are not browser writes.
    assert client.get(JOBS, headers={"Origin": "http://evil.example"}).status_code == 200
    client.cookies.clear()
    assert client.post(JOBS, json=body, headers={**headers, "Origin": "http://evil.example"}
                       ).status_code == 201


def test_sign_in_and_out_from_another_origin_are_refused(client, make_token):
    headers = make_token("read")
    client.cookies.clear()
    evil = {"Origin": "http://testserver:9000"}
    refused = client.post(f"{API}/session", json={"token": token_of(headers)}, headers=evil)
    assert refused.status_code == 403 and "set-cookie" not in refused.headers
    cookie = sign_in(client, headers, headers=OWN)
    assert client.delete(f"{API}/session", headers=evil).status_code == 403
    assert client.get(JOBS).status_code == 200  # still signed in
    assert client.cookies.get(COOKIE_NAME) == cookie
