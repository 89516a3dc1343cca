"""Response shapes of the API (requests are validated by backend.job_spec)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.models import Job


class HistoryOut(BaseModel):
    status: str
    at: datetime
    note: str | None


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str | None
    owner: str
    tags: list[str]
    status: str
    model: str
    dataset: str
    method: str
    config: dict[str, Any]
    attempt: int
    step: int
    total_steps: int | None
    progress: float
    latest: dict[str, Any]
    summary: dict[str, Any] | None
    error: str | None
    worker_id: str | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested: bool
    history: list[HistoryOut] | None = None

    @classmethod
    def of(cls, job: Job, history: list[HistoryOut] | None = None) -> JobOut:
        progress = 1.0 if job.status == "succeeded" else (
            min(job.step / job.total_steps, 1.0) if job.total_steps else 0.0)
        return cls(**{name: getattr(job, name) for name in (
            "id", "name", "owner", "status", "model", "dataset", "method", "config", "attempt",
            "step", "total_steps", "summary", "error", "worker_id", "heartbeat_at",
            "created_at", "started_at", "finished_at", "cancel_requested")},
            tags=job.tag_names, latest=job.latest or {}, progress=progress, history=history)


class JobPage(BaseModel):
    items: list[JobOut]
    total: int
    limit: int
    offset: int


class LogOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    level: str
    message: str


class LogPage(BaseModel):
    items: list[LogOut]


class Series(BaseModel):
    steps: list[int]
    values: list[float | None]


class MetricsOut(BaseModel):
    job_id: int
    keys: list[str]
    series: dict[str, Series]
    cursor: str  # resume GET /jobs/{id}/events?after=<cursor> to continue without a gap


class WorkerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    host: str
    device: str
    gpu_name: str | None
    gpu_memory_mb: int | None
    current_job_id: int | None
    heartbeat_at: datetime
    heartbeat_age_s: float


class SessionIn(BaseModel):
    token: str


class IdentityOut(BaseModel):
    name: str
    scope: str


class TokenIn(BaseModel):
    name: str
    scope: str


class TokenOut(IdentityOut):
    token: str


class AnalysisIn(BaseModel):
    """POST /jobs/{id}/analyses. The options mirror pruning.valley.ValleyOptions."""

    model_config = ConfigDict(extra="forbid")

    kinds: Annotated[list[Literal["linear", "bezier", "hessian", "plane"]],
                     Field(min_length=1, max_length=4,
                           description="analyses to run (default: the job's `analyses`)")] = []
    reference_job_id: Annotated[int | None, Field(
        ge=1, description="a finished job to compare with (default: the job's own SGD twin)")
    ] = None
    points: Annotated[int, Field(ge=3, le=401, description="points on the linear path")] = 41
    bezier_points: Annotated[int, Field(ge=3, le=401)] = 21
    bezier_steps: Annotated[int, Field(ge=1, le=100_000,
                                       description="training steps of the curve's middle")] = 200
    hessian_k: Annotated[int, Field(ge=1, le=100, description="top Hessian eigenpairs")] = 10
    random_directions: Annotated[int, Field(ge=1, le=1000)] = 10
    plane_grid: Annotated[int, Field(ge=3, le=101, description="grid points per axis")] = 21
    eval_samples: Annotated[int, Field(ge=64, le=10_000_000, description="training samples "
                                       "used for every train-loss evaluation")] = 5000

    def engine_options(self, default_kinds: list[str]) -> dict[str, Any]:
        options = self.model_dump(exclude={"reference_job_id"})
        options["kinds"] = list(dict.fromkeys(self.kinds or default_kinds))
        return options


class AnalysisOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    job_id: int
    reference_job_id: int | None
    options: dict[str, Any]
    status: str
    progress: float
    message: str | None
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ArtifactOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    format: str
    sha256: str
    bytes: int
    created_at: datetime
    url: str = ""
