"""Jobs: submit, list, read, cancel, retry, delete."""

from __future__ import annotations

import shutil
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Response
from sqlalchemy.orm import Session

from backend.api.deps import (
    JobDep,
    OwnedJobDep,
    Reader,
    SessionDep,
    SettingsDep,
    Submitter,
    within_job_quota,
)
from backend.api.responses import errors
from backend.api.spec_body import RawBody, documented_body, service_context, validate_body
from backend.queue import dispatch_now
from backend.schemas import NO_NUL, HistoryOut, JobOut, JobPage
from backend.services import idempotency
from backend.services import jobs as service
from backend.services.dispatch import Message, mark_pending
from backend.services.models import pin_version
from pruneboard.spec import JobSubmission
from pruneboard.spec.forecast import forecast_for
from pruneboard.spec.schema import client_job_schema
from pruneboard.spec.types import INT64_MAX
from pruneboard.status import JobStatus

router = APIRouter(prefix="/jobs", tags=["jobs"])

IdempotencyKeyHeader = Annotated[str | None, Header(
    alias=idempotency.HEADER, min_length=1, max_length=idempotency.MAX_KEY_LENGTH,
    pattern=NO_NUL,
    description="Any unique string of the client's (a UUID, say). Sending a submit again with "
                "the same key and the same body returns the job the first one created (201, "
                "the job as it is now) instead of creating a second one, so a client may retry "
                "after a timeout or a 5xx. The same key with a different body is refused "
                "(422). Keys are per token name and kept as long as the job.")]


@router.post("", status_code=201, response_model=JobOut,
             openapi_extra=documented_body(client_job_schema()),
             responses=errors(401, 403, 409, 413, 422, 429))
def submit_job(raw: RawBody, session: SessionDep, settings: SettingsDep,
               caller: Submitter, idempotency_key: IdempotencyKeyHeader = None) -> Any:
    """Submit a job: the body is a job config (GET /config-spec) plus a name and tags. The job
    is queued even while the broker is down (its message goes out when the broker is back)."""
    keyed = idempotency.keyed_request(caller.name, idempotency.JOBS_ROUTE, idempotency_key, raw)
    if keyed is not None and (earlier := _replay(session, keyed)) is not None:
        return earlier
    context = service_context(session, settings)
    body = validate_body(JobSubmission, raw, context)
    # 429 at the owner's cap; an Idempotency-Key replay, which creates nothing, goes first.
    within_job_quota(session, settings, owner=caller.name)
    job = service.create_job(session, owner=caller.name,
                             config=pin_version(body.engine_config(), context.models),
                             name=body.name, tags=body.tags)
    # From the architecture until the worker's start event brings the engine's own.
    job.forecast = forecast_for(body, context)
    mark_pending(job)  # the outbox: the run message is owed from this very commit on
    if keyed is not None:
        try:
            idempotency.remember(session, keyed, job_id=job.id)
        except idempotency.KeyTaken:
            session.rollback()  # a concurrent request with this key won: answer with its job
            if (earlier := _replay(session, keyed)) is not None:
                return earlier
            raise HTTPException(409, f"a concurrent request with this {idempotency.HEADER} "
                                     f"failed; send it again") from None
    session.commit()
    dispatch_now(settings, [Message("job", job.id)])
    return JobOut.of(job, detail=True)


def _replay(session: Session, keyed: idempotency.KeyedRequest) -> JobOut | None:
    """The answer the first request with this key got (the job as it is now), if there was one."""
    try:
        record = idempotency.replay(session, keyed)
    except idempotency.KeyReused as error:
        raise HTTPException(422, [{"field": idempotency.HEADER, "message": str(error)}]) from None
    job = service.get_job(session, record.job_id) if record and record.job_id else None
    return JobOut.of(job, detail=True) if job is not None else None


@router.get("", response_model=JobPage, responses=errors(401, 422))
def list_jobs(session: SessionDep, _: Reader,
              status: JobStatus | None = None,
              owner: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
              tag: Annotated[str | None, Query(max_length=50, pattern=NO_NUL)] = None,
              q: Annotated[str | None, Query(max_length=200, pattern=NO_NUL,
                                               description="text search")] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0) -> Any:
    jobs, total = service.list_jobs(session, service.JobFilter(status, owner, tag, q),
                                    limit=limit, offset=offset)
    return JobPage(items=[JobOut.of(j) for j in jobs], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut, responses=errors(401, 404, 422))
def read_job(job: JobDep, session: SessionDep) -> Any:
    history = [HistoryOut(status=c.status, at=c.created_at, note=c.note)
               for c in service.status_history(session, job.id)]
    return JobOut.of(job, history, detail=True)


@router.post("/{job_id}/cancel", response_model=JobOut,
             responses=errors(401, 403, 404, 409, 422))
def cancel_job(job: OwnedJobDep, session: SessionDep) -> Any:
    try:
        service.request_cancel(session, job)
    except service.IllegalTransition as error:
        raise HTTPException(409, str(error)) from None
    session.commit()
    return JobOut.of(job, detail=True)


@router.post("/{job_id}/retry", response_model=JobOut,
             responses=errors(401, 403, 404, 409, 422, 429))
def retry_job(job: OwnedJobDep, session: SessionDep, settings: SettingsDep) -> Any:
    within_job_quota(session, settings, owner=job.owner)  # queued again: it counts again
    try:
        service.retry_job(session, job)
    except service.IllegalTransition as error:
        raise HTTPException(409, str(error)) from None
    mark_pending(job)
    session.commit()
    dispatch_now(settings, [Message("job", job.id)])
    return JobOut.of(job, detail=True)


@router.delete("/{job_id}", status_code=204, responses=errors(401, 403, 404, 409, 422))
def delete_job(job: OwnedJobDep, session: SessionDep, settings: SettingsDep) -> Response:
    try:
        artifacts = service.delete_job(session, job, settings.resolved_artifact_dir)
    except service.IllegalTransition as error:
        raise HTTPException(409, str(error)) from None
    session.commit()
    shutil.rmtree(artifacts, ignore_errors=True)
    return Response(status_code=204)
