"""Jobs: submit, list, read, cancel, retry, delete."""

from __future__ import annotations

import shutil
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response

from backend.api.deps import JobDep, OwnedJobDep, Reader, SessionDep, SettingsDep, Submitter
from backend.api.spec_body import RawBody, documented_body, service_context, validate_body
from backend.queue import enqueue_job
from backend.schemas import HistoryOut, JobOut, JobPage
from backend.services import jobs as service
from pruneboard.spec import JobSubmission
from pruneboard.spec.forecast import forecast_for
from pruneboard.spec.schema import client_job_schema
from pruneboard.spec.types import INT64_MAX
from pruneboard.status import JobStatus

# PostgreSQL text cannot hold NUL: refused here rather than failing in the driver.
NO_NUL = r"^[^\x00]*$"

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.post("", status_code=201, response_model=JobOut,
             openapi_extra=documented_body(client_job_schema()))
def submit_job(raw: RawBody, session: SessionDep, settings: SettingsDep,
               caller: Submitter) -> Any:
    """Submit a job: the body is a job config (GET /config-spec) plus a name and tags."""
    context = service_context(session, settings)
    body = validate_body(JobSubmission, raw, context)
    job = service.create_job(session, owner=caller.name, config=body.engine_config(),
                             name=body.name, tags=body.tags)
    # From the architecture until the worker's start event brings the engine's own.
    job.forecast = forecast_for(body, context)
    session.commit()
    enqueue_job(settings, job.id)
    return JobOut.of(job, detail=True)


@router.get("", response_model=JobPage)
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


@router.get("/{job_id}", response_model=JobOut)
def read_job(job: JobDep, session: SessionDep) -> Any:
    history = [HistoryOut(status=c.status, at=c.created_at, note=c.note)
               for c in service.status_history(session, job.id)]
    return JobOut.of(job, history, detail=True)


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel_job(job: OwnedJobDep, session: SessionDep) -> Any:
    try:
        service.request_cancel(session, job)
    except service.IllegalTransition as error:
        raise HTTPException(409, str(error)) from None
    session.commit()
    return JobOut.of(job, detail=True)


@router.post("/{job_id}/retry", response_model=JobOut)
def retry_job(job: OwnedJobDep, session: SessionDep, settings: SettingsDep) -> Any:
    try:
        service.retry_job(session, job)
    except service.IllegalTransition as error:
        raise HTTPException(409, str(error)) from None
    session.commit()
    enqueue_job(settings, job.id)
    return JobOut.of(job, detail=True)


@router.delete("/{job_id}", status_code=204)
def delete_job(job: OwnedJobDep, session: SessionDep, settings: SettingsDep) -> Response:
    try:
        artifacts = service.delete_job(session, job, settings.resolved_artifact_dir)
    except service.IllegalTransition as error:
        raise HTTPException(409, str(error)) from None
    session.commit()
    shutil.rmtree(artifacts, ignore_errors=True)
    return Response(status_code=204)
