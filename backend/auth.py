"""API tokens: ``pb_<key>_<secret>``, stored as a SHA-256, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import SCOPES, ApiToken, utcnow

SCOPE_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}


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
    session.add(ApiToken(key=key, name=name, scope=scope, token_hash=_digest(token)))
    session.flush()
    return token


def verify_token(session: Session, token: str) -> ApiToken | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "pb":
        return None
    record = session.scalar(select(ApiToken).where(ApiToken.key == parts[1]))
    if record is None or not hmac.compare_digest(record.token_hash, _digest(token)):
        return None
    record.last_used_at = utcnow()
    return record


def allows(scope: str, needed: str) -> bool:
    return SCOPE_RANK[scope] >= SCOPE_RANK[needed]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
