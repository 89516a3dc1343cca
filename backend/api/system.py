"""Health, the job spec and its forecast, workers, browser sessions and tokens."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select, text

from backend.api.deps import (
    COOKIE_NAME,
    Admin,
    Reader,
    SessionDep,
    SettingsDep,
    check_same_origin,
)
from backend.api.responses import errors
from backend.api.spec_body import RawBody, documented_body, service_context, validate_body
from backend.auth import (
    TokenError,
    create_token,
    end_browser_session,
    list_tokens,
    refusal,
    revoke_token,
    start_browser_session,
    token_expiry,
    verify_token,
)
from backend.models import Worker, as_utc, utcnow
from backend.queue import broker_problem
from backend.schemas import (
    NO_NUL,
    ForecastOut,
    IdentityOut,
    SessionIn,
    TokenIn,
    TokenInfoOut,
    TokenOut,
    WorkerOut,
)
from pruneboard.spec import JobSubmission, config_document
from pruneboard.spec.forecast import forecast_for, forecast_warnings
from pruneboard.spec.schema import client_job_schema

router = APIRouter()


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    database: str = Field(description='"ok", or why the database does not answer')
    broker: str = Field(description='"ok", or why the broker does not take connections (the '
                                    'filesystem broker: its folder)')


@router.get("/healthz", tags=["system"], response_model=HealthOut,
            responses={503: {"model": HealthOut,
                             "description": "the database or the broker is unreachable"}})
def health(session: SessionDep, settings: SettingsDep) -> JSONResponse:
    """Unauthenticated and cheap (a ``SELECT 1`` and a broker connection, each with a short
    timeout): 200 when both answer, else 503 saying which does not. With the broker down,
    submits still succeed (their messages wait in the outbox), but nothing starts."""
    try:
        session.execute(text("SELECT 1"))
        database = "ok"
    except Exception as error:  # any driver error means the same: no database
        database = f"unreachable: {type(error).__name__}"
    broker = broker_problem(settings) or "ok"
    healthy = database == "ok" and broker == "ok"
    return JSONResponse(status_code=200 if healthy else 503, content={
        "status": "ok" if healthy else "degraded", "database": database, "broker": broker})


@router.get("/config-spec", tags=["jobs"], responses=errors(401))
def config_spec(session: SessionDep, settings: SettingsDep, _: Reader) -> dict:
    """The job spec for clients and the form: the JSON Schema of a job body, its sections, this
    service's limits, the data folders live workers report, and the presets that can run here."""
    return config_document(service_context(session, settings))


@router.post("/config-spec/forecast", response_model=ForecastOut, tags=["jobs"],
             responses=errors(401, 413, 422),
             openapi_extra=documented_body(client_job_schema()))
def config_forecast(raw: RawBody, session: SessionDep, settings: SettingsDep, _: Reader) -> Any:
    """The pruning forecast of a job body (as POST /jobs takes it, refused the same way), from
    the model's architecture: which layers the threshold alone forces to zero, at which step."""
    context = service_context(session, settings)
    forecast = forecast_for(validate_body(JobSubmission, raw, context), context)
    return {"forecast": forecast, "warnings": forecast_warnings(forecast)}


@router.get("/workers", response_model=list[WorkerOut], tags=["system"],
            responses=errors(401))
def list_workers(session: SessionDep, _: Reader) -> Any:
    now = utcnow()
    workers = session.scalars(select(Worker).order_by(Worker.id)).all()
    return [WorkerOut(**{c: getattr(w, c) for c in (
        "id", "host", "device", "gpu_name", "gpu_memory_mb", "current_job_id", "heartbeat_at")},
        heartbeat_age_s=(now - as_utc(w.heartbeat_at)).total_seconds(),
        datasets=w.datasets or []) for w in workers]


@router.post("/session", response_model=IdentityOut, tags=["auth"],
             responses=errors(401, 403, 413, 422), openapi_extra={"security": []})
def sign_in(body: SessionIn, request: Request, response: Response, session: SessionDep,
            settings: SettingsDep) -> Any:
    """Sign a browser in: the token is checked once and the cookie gets a session id of its
    own, revoked at sign-out (the token itself never sits in the browser's cookie jar). A
    request that names its Origin must come from this service's own pages."""
    check_same_origin(request, required=False)
    record = verify_token(session, body.token)
    if record is None:
        raise HTTPException(401, refusal(session, body.token))
    session_id = start_browser_session(session, record, max_age_s=settings.session_max_age_s)
    session.commit()
    response.set_cookie(COOKIE_NAME, session_id, httponly=True, samesite="strict",
                        secure=settings.cookie_secure, path="/",
                        max_age=settings.session_max_age_s)
    return {"name": record.name, "scope": record.scope}


@router.get("/session", response_model=IdentityOut, tags=["auth"], responses=errors(401))
def whoami(caller: Reader) -> Any:
    return {"name": caller.name, "scope": caller.scope}


@router.delete("/session", status_code=204, tags=["auth"], responses=errors(403))
def sign_out(request: Request, session: SessionDep) -> Response:
    """End this browser's session on the server too: the cookie stops working everywhere."""
    check_same_origin(request, required=False)  # no other page may sign this browser out
    session_id = request.cookies.get(COOKIE_NAME)
    if session_id:
        end_browser_session(session, session_id)
        session.commit()
    response = Response(status_code=204)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response


@router.post("/tokens", status_code=201, response_model=TokenOut, tags=["auth"],
             responses=errors(401, 403, 413, 422))
def make_token(body: TokenIn, session: SessionDep, _: Admin) -> Any:
    """Make a token; it is in this response only. It ends after ``expires_in_days`` or at
    ``expires_at`` when one is given, else never (until revoked)."""
    try:
        expires_at = token_expiry(days=body.expires_in_days, at=body.expires_at)
        token = create_token(session, name=body.name, scope=body.scope, expires_at=expires_at)
    except TokenError as error:
        raise HTTPException(422, [{"field": error.field, "message": str(error)}]) from None
    session.commit()
    return {"name": body.name, "scope": body.scope, "token": token, "expires_at": expires_at}


@router.get("/tokens", response_model=list[TokenInfoOut], tags=["auth"],
            responses=errors(401))
def show_tokens(session: SessionDep, caller: Reader) -> Any:
    """Every token for an admin; any other token sees only itself. Never a hash."""
    records = list_tokens(session, name=None if caller.scope == "admin" else caller.name)
    return [TokenInfoOut(name=r.name, scope=r.scope, created_at=as_utc(r.created_at),
                         last_used_at=r.last_used_at and as_utc(r.last_used_at),
                         expires_at=r.expires_at and as_utc(r.expires_at)) for r in records]


@router.delete("/tokens/{name:path}", status_code=204, tags=["auth"],
               responses=errors(401, 403, 404, 422))
def delete_token(name: Annotated[str, Path(max_length=100, pattern=NO_NUL)], request: Request,
                 session: SessionDep, caller: Reader) -> Response:
    """Revoke a token (an admin: any; any other token: itself) and end its browser sessions;
    jobs it submitted stay, owned by its name."""
    if caller.scope != "admin" and name != caller.name:
        raise HTTPException(403, f"a {caller.scope} token may revoke only itself "
                                 f"({caller.name!r}); revoking others needs an admin token")
    if revoke_token(session, name) is None:
        raise HTTPException(404, f"no token named {name!r}")
    session.commit()
    response = Response(status_code=204)
    if name == caller.name and request.cookies.get(COOKIE_NAME):
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response
