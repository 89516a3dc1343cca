"""Health, the job spec and its forecast, workers, browser sessions and tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy import select, text

from backend.api.deps import COOKIE_NAME, Admin, Reader, SessionDep, SettingsDep
from backend.api.spec_body import RawBody, documented_body, service_context, validate_body
from backend.auth import (
    TokenError,
    create_token,
    end_browser_session,
    start_browser_session,
    verify_token,
)
from backend.models import Worker, as_utc, utcnow
from backend.schemas import ForecastOut, IdentityOut, SessionIn, TokenIn, TokenOut, WorkerOut
from pruneboard.spec import JobSubmission, config_document
from pruneboard.spec.forecast import forecast_for, forecast_warnings
from pruneboard.spec.schema import client_job_schema

router = APIRouter()


@router.get("/healthz", tags=["system"])
def health(session: SessionDep) -> dict:
    try:
        session.execute(text("SELECT 1"))
    except Exception as error:  # any driver error means the same: no database
        raise HTTPException(503, f"database unreachable: {type(error).__name__}") from None
    return {"status": "ok"}


@router.get("/config-spec", tags=["jobs"])
def config_spec(session: SessionDep, settings: SettingsDep, _: Reader) -> dict:
    """The job spec for clients and the form: the JSON Schema of a job body, its sections, this
    service's limits, the data folders live workers report, and the presets that can run here."""
    return config_document(service_context(session, settings))


@router.post("/config-spec/forecast", response_model=ForecastOut, tags=["jobs"],
             openapi_extra=documented_body(client_job_schema()))
def config_forecast(raw: RawBody, session: SessionDep, settings: SettingsDep, _: Reader) -> Any:
    """The pruning forecast of a job body (as POST /jobs takes it, refused the same way), from
    the model's architecture: which layers the threshold alone forces to zero, at which step."""
    context = service_context(session, settings)
    forecast = forecast_for(validate_body(JobSubmission, raw, context), context)
    return {"forecast": forecast, "warnings": forecast_warnings(forecast)}


@router.get("/workers", response_model=list[WorkerOut], tags=["system"])
def list_workers(session: SessionDep, _: Reader) -> Any:
    now = utcnow()
    workers = session.scalars(select(Worker).order_by(Worker.id)).all()
    return [WorkerOut(**{c: getattr(w, c) for c in (
        "id", "host", "device", "gpu_name", "gpu_memory_mb", "current_job_id", "heartbeat_at")},
        heartbeat_age_s=(now - as_utc(w.heartbeat_at)).total_seconds(),
        datasets=w.datasets or []) for w in workers]


@router.post("/session", response_model=IdentityOut, tags=["auth"])
def sign_in(body: SessionIn, response: Response, session: SessionDep,
            settings: SettingsDep) -> Any:
    """Sign a browser in: the token is checked once and the cookie gets a session id of its
    own, revoked at sign-out (the token itself never sits in the browser's cookie jar)."""
    record = verify_token(session, body.token)
    if record is None:
        raise HTTPException(401, "invalid, revoked or expired token")
    session_id = start_browser_session(session, record, max_age_s=settings.session_max_age_s)
    session.commit()
    response.set_cookie(COOKIE_NAME, session_id, httponly=True, samesite="strict",
                        secure=settings.cookie_secure, path="/",
                        max_age=settings.session_max_age_s)
    return {"name": record.name, "scope": record.scope}


@router.get("/session", response_model=IdentityOut, tags=["auth"])
def whoami(caller: Reader) -> Any:
    return {"name": caller.name, "scope": caller.scope}


@router.delete("/session", status_code=204, tags=["auth"])
def sign_out(request: Request, session: SessionDep) -> Response:
    """End this browser's session on the server too: the cookie stops working everywhere."""
    session_id = request.cookies.get(COOKIE_NAME)
    if session_id:
        end_browser_session(session, session_id)
        session.commit()
    response = Response(status_code=204)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response


@router.post("/tokens", status_code=201, response_model=TokenOut, tags=["auth"])
def make_token(body: TokenIn, session: SessionDep, _: Admin) -> Any:
    try:
        token = create_token(session, name=body.name, scope=body.scope)
    except TokenError as error:
        raise HTTPException(422, [{"field": "scope" if "scope" in str(error) else "name",
                                   "message": str(error)}]) from None
    session.commit()
    return {"name": body.name, "scope": body.scope, "token": token}
