"""Request dependencies: settings, one DB session per request, the caller's token, the job."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from sqlalchemy.orm import Session

from backend.auth import allows, identify
from backend.db import get_sessionmaker
from backend.models import ApiToken, Job
from backend.services.jobs import get_job
from backend.settings import Settings
from pruneboard.spec.types import INT64_MAX

# The cookie holds a browser session id (backend.auth.start_browser_session), not a token.
COOKIE_NAME = "pruneboard_session"


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    session = get_sessionmaker(settings.resolved_database_url)()
    try:
        yield session
    finally:
        session.rollback()  # whatever the route did not commit is dropped
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]


def request_credential(request: Request) -> str | None:
    """The bearer token, or else the browser's session id (EventSource cannot send headers, so
    a browser's session lives in an HttpOnly cookie)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE_NAME)


def _caller(request: Request, session: SessionDep) -> ApiToken:
    credential = request_credential(request)
    if not credential:
        raise HTTPException(401, "missing token: send Authorization: Bearer <token>",
                            headers={"WWW-Authenticate": "Bearer"})
    record = identify(session, credential)
    if record is None:
        raise HTTPException(401, "invalid, revoked or expired token (or browser session)",
                            headers={"WWW-Authenticate": "Bearer"})
    if session.dirty:
        session.commit()  # last_used_at moved on
    return record


def require(scope: str):
    def check(caller: Annotated[ApiToken, Depends(_caller)]) -> ApiToken:
        if not allows(caller.scope, scope):
            raise HTTPException(403, f"this needs a {scope} token; yours is {caller.scope}")
        return caller
    return check


Reader = Annotated[ApiToken, Depends(require("read"))]
Submitter = Annotated[ApiToken, Depends(require("submit"))]
Admin = Annotated[ApiToken, Depends(require("admin"))]


def load_job(job_id: Annotated[int, Path(ge=1, le=INT64_MAX)], session: SessionDep,
             _: Reader) -> Job:
    job = get_job(session, job_id)
    if job is None:
        raise HTTPException(404, f"job {job_id} not found")
    return job


JobDep = Annotated[Job, Depends(load_job)]


def owned_job(job: JobDep, caller: Submitter) -> Job:
    """A submit token acts only on its own jobs; admin on any."""
    if caller.scope != "admin" and job.owner != caller.name:
        raise HTTPException(403, f"job {job.id} belongs to {job.owner}; a submit token may "
                                 f"change only its own jobs")
    return job


OwnedJobDep = Annotated[Job, Depends(owned_job)]
