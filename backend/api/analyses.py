"""Loss-valley analyses of a finished job, and the files it exported."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import FileResponse

from backend.api.deps import JobDep, SessionDep, SettingsDep, Submitter
from backend.api.spec_body import (
    BodyRefused,
    RawBody,
    documented_body,
    service_context,
    validate_body,
)
from backend.queue import enqueue_analysis
from backend.schemas import AnalysisOut, ArtifactOut
from backend.services import analyses as service
from backend.services import artifacts
from backend.services.jobs import IllegalTransition, get_job
from pruneboard.spec import AnalysisRequest

router = APIRouter(prefix="/jobs", tags=["analyses"])


@router.post("/{job_id}/analyses", status_code=201, response_model=AnalysisOut,
             openapi_extra=documented_body(AnalysisRequest, required=False))
def start_analysis(job: JobDep, session: SessionDep, settings: SettingsDep, _: Submitter,
                   raw: RawBody) -> Any:
    """Start a loss-valley analysis of a finished job; an empty body takes every default."""
    body = validate_body(AnalysisRequest, raw, service_context(session, settings),
                         empty_ok=True)
    reference = None
    if body.reference_job_id is not None:
        reference = get_job(session, body.reference_job_id)
        if reference is None:
            _bad_field("reference_job_id", f"job {body.reference_job_id} not found")
    options = body.engine_options(job.config.get("analyses") or ["linear", "hessian", "plane"])
    try:
        analysis = service.create_analysis(session, job, reference=reference, options=options)
    except IllegalTransition as error:
        raise HTTPException(409, str(error)) from None
    except service.BadReference as error:
        _bad_field("reference_job_id", str(error))
    session.commit()
    enqueue_analysis(settings, analysis.id)
    return analysis


@router.get("/{job_id}/analyses", response_model=list[AnalysisOut])
def list_analyses(job: JobDep, session: SessionDep) -> Any:
    return service.list_analyses(session, job.id)


@router.get("/{job_id}/artifacts", response_model=list[ArtifactOut])
def list_artifacts(job: JobDep, session: SessionDep) -> Any:
    return [ArtifactOut.model_validate(a).model_copy(
                update={"url": f"/api/v1/jobs/{job.id}/artifacts/{a.name}"})
            for a in artifacts.list_artifacts(session, job.id)]


@router.get("/{job_id}/artifacts/{name}")
def download_artifact(job: JobDep,
                      name: Annotated[str, Path(max_length=200, pattern=r"^[^\x00/]+$")],
                      session: SessionDep,
                      settings: SettingsDep) -> FileResponse:
    artifact = artifacts.get_artifact(session, job.id, name)
    if artifact is None:
        raise HTTPException(404, f"job {job.id} has no artifact {name!r}")
    try:
        path = artifacts.verified_path(settings.resolved_artifact_dir, artifact)
    except artifacts.ArtifactChanged as error:
        raise HTTPException(410, str(error)) from None
    return FileResponse(path, filename=f"job{job.id}-{artifact.name}",
                        media_type="application/octet-stream",
                        headers={"X-Content-SHA256": artifact.sha256})


def _bad_field(field: str, message: str):
    raise BodyRefused([{"field": field, "message": message}])
