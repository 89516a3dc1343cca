"""Response shapes of the API (job and analysis bodies are validated by pruneboard.spec)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from backend.models import Job
from pruneboard.spec.forecast import forecast_warnings
from pruneboard.status import JobStatus


class HistoryOut(BaseModel):
    status: JobStatus
    at: datetime
    note: str | None


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str | None
    owner: str
    tags: list[str]
    status: JobStatus
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
    # Only in the answers about one job (submit, read, cancel, retry), not in lists or streams:
    # the pruning forecast (pruneboard.spec.forecast: from the architecture until a run starts,
    # then the engine's from the start event) and its warnings.
    forecast: dict[str, Any] | None = None
    warnings: list[str] | None = None

    @classmethod
    def of(cls, job: Job, history: list[HistoryOut] | None = None, *,
           detail: bool = False) -> JobOut:
        progress = 1.0 if job.status == JobStatus.SUCCEEDED else (
            min(job.step / job.total_steps, 1.0) if job.total_steps else 0.0)
        about = {"forecast": job.forecast, "warnings": forecast_warnings(job.forecast)
                 } if detail else {}
        return cls(**{name: getattr(job, name) for name in (
            "id", "name", "owner", "status", "model", "dataset", "method", "config", "attempt",
            "step", "total_steps", "summary", "error", "worker_id", "heartbeat_at",
            "created_at", "started_at", "finished_at", "cancel_requested")},
            tags=job.tag_names, latest=job.latest or {}, progress=progress, history=history,
            **about)


class ForecastOut(BaseModel):
    """POST /config-spec/forecast: the forecast of a job body (null for a method without a
    threshold, or data whose facts are unknown) and its warnings."""

    forecast: dict[str, Any] | None
    warnings: list[str]


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
    # The dataset folders it can read: {dataset, data_dir, input_shape, num_classes, train_size}.
    datasets: list[dict[str, Any]] = []


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


class AnalysisOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    job_id: int
    reference_job_id: int | None
    options: dict[str, Any]
    status: JobStatus
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
