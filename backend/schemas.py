"""Response shapes of the API (job and analysis bodies are validated by pruneboard.spec)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from backend.models import Job, as_utc
from pruneboard.spec.forecast import forecast_warnings
from pruneboard.status import JobStatus

# PostgreSQL text cannot hold NUL; the pattern says so in the OpenAPI document, and query
# parameters use it as is (backend.main words its refusal as the validator below does).
NO_NUL = r"^[^\x00]*$"
INT32_MAX = 2**31 - 1  # Integer columns (steps) on PostgreSQL


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes (all stored as UTC); PostgreSQL answers in the
    # session's time zone. Either way the client gets UTC with its offset.
    return as_utc(moment).astimezone(UTC)


# Every datetime of every response: timezone-aware UTC on both databases.
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


def _storable(text: str) -> str:
    if "\x00" in text:
        raise PydanticCustomError("nul_byte", "must not contain NUL bytes")
    if any("\ud800" <= char <= "\udfff" for char in text):
        raise PydanticCustomError("surrogate", "must not contain unpaired surrogates")
    return text


def text(max_length: int, *, min_length: int = 0) -> Any:
    """A request string the database can store: bounded, without NUL or lone surrogates."""
    return Annotated[str, Field(min_length=min_length, max_length=max_length,
                                json_schema_extra={"pattern": NO_NUL}),
                     AfterValidator(_storable)]


class FieldErrorOut(BaseModel):
    field: str  # dotted: "epochs", "mlp_widths.1", "body" for the body as a whole
    message: str
    allowed: str | None = None  # spec-validated bodies: the field's allowed values


class ValidationErrorOut(BaseModel):
    """Every 422: one entry per bad field of the body, query, path, header or cookie."""

    detail: list[FieldErrorOut]


class ErrorOut(BaseModel):
    """Every other error: 401, 403, 404, 409, 410, 413, 429 (backend.api.responses)."""

    detail: str


class HistoryOut(BaseModel):
    status: JobStatus
    at: UtcDatetime
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
    attempt: int  # runs started (each claim is one)
    worker_losses: int  # runs lost with their worker; the job fails at max_attempts of them
    step: int
    total_steps: int | None
    progress: float
    latest: dict[str, Any]
    summary: dict[str, Any] | None
    error: str | None
    worker_id: str | None
    heartbeat_at: UtcDatetime | None
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
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
            "worker_losses",
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
    created_at: UtcDatetime
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
    heartbeat_at: UtcDatetime
    heartbeat_age_s: float
    # The dataset folders it can read: {dataset, data_dir, input_shape, num_classes, train_size}.
    datasets: list[dict[str, Any]] = []


class SessionIn(BaseModel):
    token: text(200, min_length=1)


class IdentityOut(BaseModel):
    name: str
    scope: str


class TokenIn(BaseModel):
    name: text(100, min_length=1)
    scope: text(10, min_length=1)
    # At most one; neither: the token never expires (ranges: backend.auth.token_expiry).
    expires_in_days: int | None = None
    expires_at: datetime | None = None  # without a time zone: UTC


class TokenOut(IdentityOut):
    token: str
    expires_at: UtcDatetime | None = None


class TokenInfoOut(IdentityOut):
    """A token as GET /tokens lists it: never its hash, never the token."""

    model_config = ConfigDict(from_attributes=True)

    created_at: UtcDatetime
    last_used_at: UtcDatetime | None
    expires_at: UtcDatetime | None


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
    created_at: UtcDatetime
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None


class ArtifactOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    format: str
    sha256: str
    bytes: int
    created_at: UtcDatetime
    url: str = ""


class ModelFileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str  # "graph", "weights", "onnx"
    sha256: str
    bytes: int


class ModelVersionOut(BaseModel):
    """One pushed version: queued → running (a worker inspects it) → ready or failed."""

    model_config = ConfigDict(from_attributes=True)

    version: int
    format: str  # "graph" (JSON + safetensors) or "onnx"
    status: str
    error: str | None
    input_shape: list[int] | None
    num_classes: int | None
    has_weights: bool
    # Set when ready: params, flops, outputs, num_classes, groups, units, prunable_share,
    # dense_layers [{layers, reason}], layers [{name, type, params}], pretrained.
    inspection: dict[str, Any] | None
    files: list[ModelFileOut]
    created_at: UtcDatetime
    finished_at: UtcDatetime | None


def version_out(version) -> ModelVersionOut:
    fields = ("version", "format", "status", "error", "input_shape", "num_classes",
              "inspection", "created_at", "finished_at")
    return ModelVersionOut.model_validate(
        {**{name: getattr(version, name) for name in fields}, "files": version.files,
         "has_weights": any(f.kind in ("weights", "onnx") for f in version.files)})


class ModelOut(BaseModel):
    name: str
    owner: str
    created_at: UtcDatetime
    versions: list[ModelVersionOut]  # newest first


class ModelSummaryOut(BaseModel):
    name: str
    owner: str
    created_at: UtcDatetime
    versions: int
    latest: ModelVersionOut


class ModelListOut(BaseModel):
    models: list[ModelSummaryOut]
