"""Request dependencies: settings, one DB session per request, the caller's token, the job;
the same-origin rule for browser writes and the per-owner quotas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Path, Request
from sqlalchemy.orm import Session

from backend.auth import allows, identify, refusal
from backend.db import get_sessionmaker
from backend.models import ApiToken, Job
from backend.services import quotas
from backend.services.jobs import get_job
from backend.settings import Settings
from pruneboard.spec.types import INT64_MAX

# The cookie holds a browser session id (backend.auth.start_browser_session), not a token.
COOKIE_NAME = "pruneboard_session"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443}


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
    bearer = _bearer(request)
    return bearer if bearer is not None else request.cookies.get(COOKIE_NAME)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else None


def check_same_origin(request: Request, *, required: bool = True) -> None:
    """403 unless a browser write comes from a page of this service: its Origin (or, absent,
    its Referer) must be this request's own scheme://host[:port], by the Host header.

    SameSite=Strict keeps the cookie from other sites, but a site is a scheme and a domain:
    a page on another port of this host, or on a sibling subdomain, is the same site and its
    browser would send the cookie along. ``required`` False lets a request with neither header
    through (a script's sign-in; every browser sends Origin with a POST or DELETE). Behind a
    proxy that ends TLS, uvicorn must trust it (--forwarded-allow-ips) for the scheme to be
    https here, as it is in the browser's Origin."""
    sent = request.headers.get("origin") or request.headers.get("referer")
    if sent is None and not required:
        return
    if sent is None:
        raise HTTPException(403, "a write signed in by the browser cookie must come with an "
                                 "Origin or Referer header of this service; scripts send "
                                 "Authorization: Bearer <token> instead")
    service = f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc}"
    own, theirs = _origin_of(service), _origin_of(sent)
    if own is None or theirs != own:
        shown = "null" if theirs is None else "{}://{}:{}".format(*theirs)
        raise HTTPException(403, f"cross-origin request refused: it comes from {shown}, not "
                                 f"from this service ({service}); sign in on this service's "
                                 f"own address, or send Authorization: Bearer <token>")


def _origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the default port filled in; None for what is no origin
    (``null``, a relative or malformed URL)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname or port is None:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def authenticate(request: Request, session: SessionDep) -> ApiToken:
    """The live token behind the request's bearer header or browser session (401 otherwise); a
    write signed in by the cookie must also come from this service's own origin (403)."""
    credential = request_credential(request)
    if not credential:
        raise HTTPException(401, "missing token: send Authorization: Bearer <token>",
                            headers={"WWW-Authenticate": "Bearer"})
    if _bearer(request) is None and request.method in WRITE_METHODS:
        check_same_origin(request)  # the cookie rides along with any page's request
    record = identify(session, credential)
    if record is None:
        raise HTTPException(401, refusal(session, credential),
                            headers={"WWW-Authenticate": "Bearer"})
    if session.dirty:
        session.commit()  # last_used_at moved on
    return record


def require(scope: str):
    def check(caller: Annotated[ApiToken, Depends(authenticate)]) -> ApiToken:
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


def _owners_only(job: Job, caller: ApiToken, refusal: str) -> Job:
    if caller.scope != "admin" and job.owner != caller.name:
        raise HTTPException(403, f"job {job.id} belongs to {job.owner}; {refusal}")
    return job


def owned_job(job: JobDep, caller: Submitter) -> Job:
    """A submit token acts only on its own jobs; admin on any."""
    return _owners_only(job, caller, "a submit token may change only its own jobs")


OwnedJobDep = Annotated[Job, Depends(owned_job)]


def own_or_admin_job(job: JobDep, caller: Reader) -> Job:
    """A read that only the job's owner or an admin may make (its exported files)."""
    return _owners_only(job, caller, "only its owner or an admin may download its files")


OwnOrAdminJobDep = Annotated[Job, Depends(own_or_admin_job)]


def within_job_quota(session: Session, settings: Settings, *, owner: str) -> None:
    """429 with Retry-After when ``owner`` has max_active_jobs_per_owner queued or running."""
    try:
        quotas.check_jobs(session, settings, owner=owner)
    except quotas.QuotaExceeded as error:
        raise _too_many(error) from None


def within_analysis_quota(session: Session, settings: Settings, *, owner: str) -> None:
    """429 with Retry-After at max_active_analyses_per_owner queued or running analyses."""
    try:
        quotas.check_analyses(session, settings, owner=owner)
    except quotas.QuotaExceeded as error:
        raise _too_many(error) from None


def _too_many(error: quotas.QuotaExceeded) -> HTTPException:
    return HTTPException(429, str(error), headers={"Retry-After": str(error.retry_after_s)})
