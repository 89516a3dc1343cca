"""Loss-valley analyses of a finished job, and the files it exported."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import FileResponse

from backend.api.deps import (
    JobDep,
    OwnedJobDep,
    OwnOrAdminJobDep,
    SessionDep,
    SettingsDep,
    Submitter,
    within_analysis_quota,
)
from backend.api.responses import errors
from backend.api.spec_body import (
    BodyRefused,
    RawBody,
    documented_body,
    service_context,
    validate_body,
)
from backend.queue import dispatch_now
from backend.schemas import AnalysisOut, ArtifactOut
from backend.services import analyses as service
from backend.services import artifacts
from backend.services.dispatch import Message
from backend.services.jobs import IllegalTransition, get_job
from pruneboard.spec import AnalysisRequest

router = APIRouter(prefix="/jobs", tags=["analyses"])


@router.post("/{job_id}/analyses", status_code=201, response_model=AnalysisOut,
             openapi_extra=documented_body(AnalysisRequest, required=False),
             responses=errors(401, 403, 404, 409, 413, 422, 429))
def start_analysis(job: OwnedJobDep, session: SessionDep, settings: SettingsDep,
                   caller: Submitter, raw: RawBody) -> Any:
    """Start a loss-valley analysis of a finished job; an empty body takes every default.
    Like cancel or retry, a submit token may do it only on its own jobs, an admin on any."""
    body = validate_body(AnalysisRequest, raw, service_context(session, settings),
                         empty_ok=True)
    within_analysis_quota(session, settings, owner=caller.name)
    reference = None
    if body.reference_job_id is not None:
        # The reference may be anyone's job: the analysis only reads its weights, as any read
        # token may (its curves, its artifacts), and changes nothing of it.
        reference = get_job(session, body.reference_job_id)
        if reference is None:
            _bad_field("reference_job_id", f"job {body.reference_job_id} not found")
    options = body.engine_options(job.config.get("analyses") or ["linear", "hessian", "plane"])
    try:
        analysis = service.create_analysis(session, job, reference=reference, options=options,
                                           owner=caller.name)
    except IllegalTransition as error:
        raise HTTPException(409, str(error)) from None
    except service.BadReference as error:
        _bad_field("reference_job_id", str(error))
    session.commit()
    dispatch_now(settings, [Message("analysis", analysis.id)])  # or the dispatchers, later
    return analysis


@router.get("/{job_id}/analyses", response_model=list[AnalysisOut],
            responses=errors(401, 404, 422))
def list_analyses(job: JobDep, session: SessionDep) -> Any:
    return service.list_analyses(session, job.id)


@router.get("/{job_id}/artifacts", response_model=list[ArtifactOut],
            responses=errors(401, 404, 422))
def list_artifacts(job: JobDep, session: SessionDep) -> Any:
    return [ArtifactOut.model_validate(a).model_copy(
                update={"url": f"/api/v1/jobs/{job.id}/artifacts/{a.name}"})
            for a in artifacts.list_artifacts(session, job.id)]


@router.get("/{job_id}/artifacts/{name}", response_class=FileResponse, responses={
    200: {"description": "the file, its SHA-256 in X-Content-SHA256",
          "content": {"application/octet-stream": {"schema": {"type": "string",
                                                              "format": "binary"}}}},
    **errors(401, 403, 404, 410, 422)})
def download_artifact(job: OwnOrAdminJobDep,
                      name: Annotated[str, Path(max_length=200, pattern=r"^[^\x00/]+$")],
                      session: SessionDep,
                      settings: SettingsDep) -> FileResponse:
    """Download a file the job exported: its owner or an admin only, like cancel, retry and
    delete. The weights of a team's network are its property in a way its curves are not;
    the list of files (names, sizes, SHA-256) stays readable by any read token."""
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
