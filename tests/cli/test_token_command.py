"""`pruneboard token create | list | revoke`, run as the installed command on the database the
service's settings name (the embedded SQLite file, or PRUNEBOARD_DATABASE_URL)."""

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backend.auth import start_browser_session, verify_token
from backend.db import session_scope
from backend.models import ApiToken

ROOT = Path(__file__).resolve().parents[2]


def pruneboard(*args, data_dir, database_url=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRUNEBOARD_")}
    env["PRUNEBOARD_DATA_DIR"] = str(data_dir)
    if database_url:
        env["PRUNEBOARD_DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "cli.main", "token", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def sign_in_browser(url, name):
    with session_scope(url) as session:
        record = session.query(ApiToken).filter_by(name=name).one()
        start_browser_session(session, record, max_age_s=3600)


def test_create_list_and_revoke_on_the_embedded_database(tmp_path, sqlite_url):
    made = pruneboard("create", "--name", "alice", "--scope", "submit",
                      "--expires-in-days", "7", data_dir=tmp_path)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("pb_") and "valid until" in made.stderr
    assert pruneboard("create", "--name", "ci", "--scope", "read",
                      data_dir=tmp_path).returncode == 0

    table = pruneboard("list", data_dir=tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["NAME", "SCOPE"] and len(lines) == 3
    assert lines[1].startswith("alice") and "submit" in lines[1]
    assert lines[2].startswith("ci") and lines[2].endswith("never")  # never used, no expiry
    assert token not in table.stdout

    listed = json.loads(pruneboard("list", "--json", data_dir=tmp_path).stdout)
    alice = next(t for t in listed if t["name"] == "alice")
    assert set(alice) == {"name", "scope", "created_at", "last_used_at", "expires_at",
                          "expired"}
    ends = datetime.fromisoformat(alice["expires_at"])
    assert abs(ends - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)
    assert alice["expired"] is False

    sign_in_browser(sqlite_url, "alice")
    revoked = pruneboard("revoke", "alice", data_dir=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stderr and "1 browser session ended" in revoked.stderr
    with session_scope(sqlite_url) as session:
        assert verify_token(session, token) is None
    names = [t["name"] for t in json.loads(pruneboard("list", "--json",
                                                      data_dir=tmp_path).stdout)]
    assert names == ["ci"]


def test_list_and_revoke_on_postgresql(tmp_path, postgres_url):
    name = f"cli-{uuid.uuid4().hex[:8]}"
    assert pruneboard("create", "--name", name, "--scope", "admin", data_dir=tmp_path,
                      database_url=postgres_url).returncode == 0
    listed = pruneboard("list", "--json", data_dir=tmp_path, database_url=postgres_url)
    assert name in [t["name"] for t in json.loads(listed.stdout)]
    revoked = pruneboard("revoke", name, data_dir=tmp_path, database_url=postgres_url)
    assert revoked.returncode == 0 and "0 browser sessions ended" in revoked.stderr


def test_mistakes_are_one_line_with_exit_status_2(tmp_path, sqlite_url):
    assert pruneboard("create", "--name", "taken", "--scope", "read",
                      data_dir=tmp_path).returncode == 0
    cases = [
        (["revoke", "nobody"], "no token named 'nobody'"),
        (["create", "--name", "x", "--scope", "read", "--expires-in-days", "0"],
         "--expires-in-days must be in [1, 3650], got 0"),
        (["create", "--name", "x", "--scope", "read", "--expires-in-days", "soon"],
         "must be a whole number of days, got 'soon'"),
        (["create", "--name", "taken", "--scope", "read"], "a token named 'taken' exists"),
    ]
    for args, message in cases:
        result = pruneboard(*args, data_dir=tmp_path)
        assert result.returncode == 2, args
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr

    empty = tmp_path / "unmigrated"
    empty.mkdir()
    for args in (["list"], ["revoke", "taken"]):
        result = pruneboard(*args, data_dir=empty)
        assert result.returncode == 2, result.stderr
        assert "is the database migrated?" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
