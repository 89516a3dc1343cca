"""A job's metric series (downsampled), its CSV export and its log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from backend.api.deps import JobDep, SessionDep, SettingsDep
from backend.api.responses import errors
from backend.schemas import INT32_MAX, NO_NUL, LogOut, LogPage, MetricsOut
from backend.services import jobs as job_service
from backend.services import metrics as service
from backend.services.events import current_cursor
from pruneboard.spec.types import INT64_MAX

router = APIRouter(prefix="/jobs/{job_id}", tags=["metrics"])


@router.get("/metrics", response_model=MetricsOut, responses=errors(401, 404, 422))
def read_metrics(
    job: JobDep, session: SessionDep,
    keys: Annotated[str | None, Query(max_length=10_000, pattern=NO_NUL,
                                      description="comma-separated series; default all")] = None,
    # Steps are 32-bit on PostgreSQL: a larger one is refused, not sent to the database.
    from_step: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
    max_points: Annotated[int, Query(ge=0, le=1_000_000,
                                     description="per series; 0 = full resolution")]
    = service.DEFAULT_MAX_POINTS,
) -> Any:
    # Taken first: points written while the series are read come again on the event stream
    # resumed from this cursor (the chart ignores a step it already has).
    cursor = str(current_cursor(session))
    all_keys = service.series_keys(session, job.id)
    wanted = [k for k in keys.split(",") if k] if keys else all_keys
    series = service.read_series(session, job.id, wanted, from_step=from_step,
                                 max_points=max_points or None)
    return {"job_id": job.id, "keys": all_keys, "series": series, "cursor": cursor}


@router.get("/metrics.csv", response_class=StreamingResponse, responses={
    200: {"description": "every point: key, step, value, wall_time",
          "content": {"text/csv": {"schema": {"type": "string"}}}}, **errors(401, 404, 422)})
def export_metrics(job: JobDep, settings: SettingsDep) -> StreamingResponse:
    return StreamingResponse(
        service.metrics_csv(settings.resolved_database_url, job.id), media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="job-{job.id}-metrics.csv"'})


@router.get("/logs", response_model=LogPage, responses=errors(401, 404, 422))
def read_logs(job: JobDep, session: SessionDep,
              after_id: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
              limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> Any:
    logs = job_service.job_logs(session, job.id, after_id=after_id, limit=limit)
    return {"items": [LogOut.model_validate(line) for line in logs]}
