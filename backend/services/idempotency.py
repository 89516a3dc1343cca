"""``Idempotency-Key``: a retried POST gets back what the first one created, not a second one.

A key belongs to its owner (the token name) and its route ("jobs"; any later creating route
uses its own name), and is stored with a hash of the request body in the very transaction that
creates the row, so the key exists exactly when what it created does (deleting a job forgets
its key). The same key with another body is refused: it is a client bug, not a retry. Two
concurrent requests with one key race on the key's primary key: the loser's transaction is
rolled back and it answers with the winner's row. Plain functions that never commit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.models import IdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200  # the column's length
JOBS_ROUTE = "jobs"


class KeyReused(ValueError):
    """The key was used before with another body (HTTP 422 naming the header)."""


class KeyTaken(Exception):
    """A concurrent request stored this key first: roll back, then replay its answer."""


@dataclass(frozen=True)
class KeyedRequest:
    owner: str
    route: str
    key: str
    request_hash: str


def keyed_request(owner: str, route: str, key: str | None, body: bytes) -> KeyedRequest | None:
    """The request's identity for replays, or None when it carries no key."""
    if key is None:
        return None
    return KeyedRequest(owner=owner, route=route, key=key, request_hash=request_hash(body))


def request_hash(body: bytes) -> str:
    """SHA-256 of the body as canonical JSON, so key order and spacing do not make a retry
    "another body"; a body that is not JSON is hashed as it is."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


def replay(session: Session, request: KeyedRequest) -> IdempotencyKey | None:
    """The key's record when an earlier request with the same body created something; None for
    a new key. Raises KeyReused when the body differs."""
    record = session.scalar(select(IdempotencyKey).where(
        IdempotencyKey.owner == request.owner, IdempotencyKey.route == request.route,
        IdempotencyKey.key == request.key))
    if record is None:
        return None
    if record.request_hash != request.request_hash:
        raise KeyReused(f"this {HEADER} was used before with a different body; send a new key "
                        f"for a new request")
    return record


def remember(session: Session, request: KeyedRequest, *, job_id: int | None = None) -> None:
    """Store the key with what this request created, in the caller's transaction. Raises
    KeyTaken when a concurrent request stored it first (the session then needs a rollback)."""
    session.add(IdempotencyKey(owner=request.owner, route=request.route, key=request.key,
                               request_hash=request.request_hash, job_id=job_id))
    try:
        session.flush()
    except IntegrityError:
        raise KeyTaken(request.key) from None
