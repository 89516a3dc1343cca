"""API tokens: ``pb_<key>_<secret>``, stored as a SHA-256, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.models import SCOPES, ApiToken, as_utc, utcnow

SCOPE_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenError(ValueError):
    pass


def create_token(session: Session, *, name: str, scope: str) -> str:
    """Store a new token and return it; the plain text exists only in this return value."""
    if scope not in SCOPE_RANK:
        raise TokenError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if not name or len(name) > 100:
        raise TokenError("name must be 1 to 100 characters")
    if session.scalar(select(ApiToken).where(ApiToken.name == name)) is not None:
        raise TokenError(f"a token named {name!r} exists already")
    key, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    token = f"pb_{key}_{secret}"
    try:
        with session.begin_nested():  # a concurrent create of the same name loses cleanly
            session.add(ApiToken(key=key, name=name, scope=scope, token_hash=_digest(token)))
    except IntegrityError:
        raise TokenError(f"a token named {name!r} exists already") from None
    return token


def verify_token(session: Session, token: str) -> ApiToken | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "pb":
        return None
    record = session.scalar(select(ApiToken).where(ApiToken.key == parts[1]))
    if record is None or not hmac.compare_digest(record.token_hash, _digest(token)):
        return None
    now = utcnow()
    last = record.last_used_at
    # At most once a minute: otherwise every read (each SSE connect) becomes a write, which on
    # SQLite competes with the workers' metric inserts for the one writer lock.
    if last is None or now - as_utc(last) > LAST_USED_RESOLUTION:
        record.last_used_at = now
    return record


def allows(scope: str, needed: str) -> bool:
    return SCOPE_RANK[scope] >= SCOPE_RANK[needed]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
