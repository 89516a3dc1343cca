"""API tokens (``pb_<key>_<secret>``) and browser sessions (``ps_<secret>``), each stored only as
a SHA-256 and compared in constant time. ``identify`` takes either: a bearer header carries a
token, the sign-in cookie a session id that names its token, never the token itself."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.models import SCOPES, ApiToken, BrowserSession, as_utc, utcnow

SCOPE_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
LAST_USED_RESOLUTION = timedelta(minutes=1)
# The longest a token may be made to live (about ten years); longer is "never", which needs
# no date.
MAX_TOKEN_DAYS = 3650


class TokenError(ValueError):
    """A token that cannot be made as asked; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str = "name"):
        super().__init__(message)
        self.field = field


def create_token(session: Session, *, name: str, scope: str,
                 expires_at: datetime | None = None) -> str:
    """Store a new token and return it; the plain text exists only in this return value.
    ``expires_at`` None: it never expires."""
    if scope not in SCOPE_RANK:
        raise TokenError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}", "scope")
    if not NAME_FORM.fullmatch(name) or not name.isprintable() or _has_surrogate(name):
        raise TokenError("name must be 1 to 100 printable characters")
    if session.scalar(select(ApiToken).where(ApiToken.name == name)) is not None:
        raise TokenError(f"a token named {name!r} exists already")
    key, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    token = f"pb_{key}_{secret}"
    try:
        with session.begin_nested():  # a concurrent create of the same name loses cleanly
            session.add(ApiToken(key=key, name=name, scope=scope, token_hash=_digest(token),
                                 expires_at=expires_at))
    except IntegrityError:
        raise TokenError(f"a token named {name!r} exists already") from None
    return token


def token_expiry(*, days: int | None = None, at: datetime | None = None,
                 now: datetime | None = None) -> datetime | None:
    """When a new token ends: ``days`` from now, or the moment ``at`` (naive: UTC), at most
    MAX_TOKEN_DAYS ahead; neither: never."""
    now = now or utcnow()
    if days is not None and at is not None:
        raise TokenError("give expires_in_days or expires_at, not both", "expires_at")
    if days is not None:
        if not 1 <= days <= MAX_TOKEN_DAYS:
            raise TokenError(f"expires_in_days must be in [1, {MAX_TOKEN_DAYS}], got {days}",
                             "expires_in_days")
        return now + timedelta(days=days)
    if at is not None:
        at, latest = as_utc(at), now + timedelta(days=MAX_TOKEN_DAYS)
        if not now < at <= latest:
            raise TokenError(f"expires_at must be in (now, now + {MAX_TOKEN_DAYS} days], i.e. "
                             f"after {now:%Y-%m-%dT%H:%M:%SZ} and by {latest:%Y-%m-%dT%H:%M:%SZ}"
                             f", got {at:%Y-%m-%dT%H:%M:%SZ}", "expires_at")
        return at
    return None


def list_tokens(session: Session, *, name: str | None = None) -> list[ApiToken]:
    """Every token (``name`` None) or the one so named, by name."""
    query = select(ApiToken).order_by(ApiToken.name)
    if name is not None:
        query = query.where(ApiToken.name == name)
    return list(session.scalars(query))


def revoke_token(session: Session, name: str) -> int | None:
    """Delete the token named ``name``; its browser sessions go with it (ON DELETE CASCADE,
    which SQLite applies because backend.db turns foreign keys on). Returns how many sessions
    that ended, None when no token has that name."""
    record = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if record is None:
        return None
    sessions = session.scalar(select(func.count()).select_from(BrowserSession)
                              .where(BrowserSession.token_id == record.id))
    session.delete(record)
    session.flush()
    return sessions


# pb_<16 hex>_<urlsafe secret>: anything else is no token, refused before it reaches the
# database (a NUL or a lone surrogate would otherwise fail in the driver).
TOKEN_FORM = re.compile(r"pb_[0-9a-f]{16}_[A-Za-z0-9_-]{20,100}")
SESSION_FORM = re.compile(r"ps_[A-Za-z0-9_-]{40,100}")
# Token names: printable text without NUL or control characters.
NAME_FORM = re.compile(r"[^\x00-\x1f\x7f]{1,100}")


def verify_token(session: Session, token: str) -> ApiToken | None:
    if not TOKEN_FORM.fullmatch(token):
        return None
    parts = token.split("_", 2)
    record = session.scalar(select(ApiToken).where(ApiToken.key == parts[1]))
    if record is None or not hmac.compare_digest(record.token_hash, _digest(token)):
        return None
    now = utcnow()
    if expired(record, now):
        return None
    last = record.last_used_at
    # At most once a minute: otherwise every read (each SSE connect) becomes a write, which on
    # SQLite competes with the workers' metric inserts for the one writer lock.
    if last is None or now - as_utc(last) > LAST_USED_RESOLUTION:
        record.last_used_at = now
    return record


def identify(session: Session, credential: str) -> ApiToken | None:
    """The live token behind a bearer token or a browser session id; None for anything else
    (unknown, malformed, revoked, expired)."""
    if credential.startswith("ps_"):
        return verify_browser_session(session, credential)
    return verify_token(session, credential)


def refusal(session: Session, credential: str) -> str:
    """Why ``identify`` refused ``credential``, in words for the caller. Only its holder can
    learn that a token expired (the secret must match first); a revoked token is unknown."""
    if credential.startswith("ps_"):
        return ("browser session ended (signed out, timed out, or its token revoked or "
                "expired); sign in again")
    record = (session.scalar(select(ApiToken).where(ApiToken.key == credential.split("_")[1]))
              if TOKEN_FORM.fullmatch(credential) else None)
    if (record is not None and hmac.compare_digest(record.token_hash, _digest(credential))
            and expired(record)):
        return f"token expired at {as_utc(record.expires_at):%Y-%m-%d %H:%M UTC}"
    return "invalid token"


def expired(record: ApiToken, now: datetime | None = None) -> bool:
    return record.expires_at is not None and as_utc(record.expires_at) <= (now or utcnow())


def start_browser_session(session: Session, record: ApiToken, *, max_age_s: int) -> str:
    """A new session id for a signed-in browser; it ends at sign-out, after ``max_age_s``, or
    when the token ends (revoked or expired), whichever comes first."""
    session_id = f"ps_{secrets.token_urlsafe(32)}"
    ends = utcnow() + timedelta(seconds=max_age_s)
    if record.expires_at is not None:
        ends = min(ends, as_utc(record.expires_at))
    session.add(BrowserSession(session_hash=_digest(session_id), token_id=record.id,
                               expires_at=ends))
    return session_id


def verify_browser_session(session: Session, session_id: str) -> ApiToken | None:
    if not SESSION_FORM.fullmatch(session_id):
        return None
    row = session.scalar(select(BrowserSession)
                         .where(BrowserSession.session_hash == _digest(session_id)))
    now = utcnow()
    if row is None or as_utc(row.expires_at) <= now:
        return None
    record = session.get(ApiToken, row.token_id)
    return None if record is None or expired(record, now) else record


def end_browser_session(session: Session, session_id: str) -> None:
    if SESSION_FORM.fullmatch(session_id):
        session.execute(delete(BrowserSession)
                        .where(BrowserSession.session_hash == _digest(session_id)))


def allows(scope: str, needed: str) -> bool:
    return SCOPE_RANK[scope] >= SCOPE_RANK[needed]


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in text)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
