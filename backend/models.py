"""The database schema: the source of truth for jobs, metrics, status and heartbeats."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from pruneboard.status import JobStatus

# Stable constraint names, so Alembic migrations name things the same on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite autoincrements only INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
BigId = BigInteger().with_variant(Integer, "sqlite")

SCOPES = ("read", "submit", "admin")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(100), index=True)
    config: Mapped[dict[str, Any]]
    # Copied out of config so that lists filter and sort without parsing JSON.
    model: Mapped[str] = mapped_column(String(50))
    dataset: Mapped[str] = mapped_column(String(50))
    method: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), index=True, default=JobStatus.QUEUED)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # The lease counter: every claim increments it, and a run's writes are conditioned on it.
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    # Runs lost because their worker went away (killed, machine gone), not because the database
    # or the broker was briefly unreachable: the job fails once this reaches max_attempts.
    worker_losses: Mapped[int] = mapped_column(Integer, default=0)
    # The transactional outbox: NULL while "run job N" still has to be sent (set in the same
    # transaction that queues the job), the time it was last sent otherwise.
    dispatched_at: Mapped[datetime | None]
    worker_id: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    # Latest value of every scalar series: lists show progress without scanning history.
    latest: Mapped[dict[str, Any]] = mapped_column(default=dict)
    summary: Mapped[dict[str, Any] | None]
    # The pruning forecast (pruneboard.spec.forecast at submission; the engine's own, from the
    # start event, once a run starts): which layers the threshold alone forces to zero, when.
    forecast: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    tags: Mapped[list[JobTag]] = relationship(cascade="all, delete-orphan", lazy="selectin",
                                              order_by="JobTag.tag")

    @property
    def tag_names(self) -> list[str]:
        return sorted(t.tag for t in self.tags)


class JobTag(Base):
    __tablename__ = "job_tags"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"),
                                        primary_key=True)
    tag: Mapped[str] = mapped_column(String(50), primary_key=True, index=True)


class MetricPoint(Base):
    """One value of one series (key) at one step; MLflow's metric table, unique per step so a
    redelivered batch never duplicates a point."""

    __tablename__ = "metric_points"
    # Event streams read "id > cursor AND job_id = N" along the primary key: new rows are few,
    # so a (job_id, id) index would only slow down every insert.
    __table_args__ = (UniqueConstraint("job_id", "key", "step"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign key on purpose: checking it costs a third of the insert time of the
    # hottest table; delete_job removes a job's points explicitly.
    job_id: Mapped[int] = mapped_column(BigId)
    key: Mapped[str] = mapped_column(String(200))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    wall_time: Mapped[float] = mapped_column(Float)


class MetricRollup(Base):
    """Min, max, first and last point of a series per bucket of ``width`` steps, kept as the
    points arrive, so a million-point series downsamples from a few thousand rows."""

    __tablename__ = "metric_rollups"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"),
                                        primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    width: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    min_step: Mapped[int] = mapped_column(Integer)
    min_value: Mapped[float] = mapped_column(Float)
    max_step: Mapped[int] = mapped_column(Integer)
    max_value: Mapped[float] = mapped_column(Float)
    first_step: Mapped[int] = mapped_column(Integer)
    first_value: Mapped[float] = mapped_column(Float)
    last_step: Mapped[int] = mapped_column(Integer)
    last_value: Mapped[float] = mapped_column(Float)


class JobLog(Base):
    __tablename__ = "job_logs"
    __table_args__ = (Index("ix_job_logs_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    level: Mapped[str] = mapped_column(String(10), default="info")
    message: Mapped[str] = mapped_column(Text)


class JobChange(Base):
    """Every status or progress change of a job, in order: the status history of one job and,
    read by id, the event stream of the job list."""

    __tablename__ = "job_changes"
    __table_args__ = (Index("ix_job_changes_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(20))
    step: Mapped[int] = mapped_column(Integer, default=0)
    latest: Mapped[dict[str, Any]] = mapped_column(default=dict)
    note: Mapped[str | None] = mapped_column(Text)


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid:device
    host: Mapped[str] = mapped_column(String(200))
    device: Mapped[str] = mapped_column(String(50))
    gpu_name: Mapped[str | None] = mapped_column(String(200))
    gpu_memory_mb: Mapped[int | None] = mapped_column(Integer)
    current_job_id: Mapped[int | None] = mapped_column(BigId)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The dataset folders this worker can read under its data roots, with their facts
    # (pruning.data.scan_data_roots): what a job's data_dir is validated against.
    datasets: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=list)
    # Names its installed plugins register ({"models": [...], "datasets": [...]}): a job may name
    # a plugin model or dataset only while some live worker has it.
    plugins: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=dict)


class ApiToken(Base):
    """A bearer token ``pb_<key>_<secret>``: looked up by key, the whole token kept only as its
    SHA-256."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    scope: Mapped[str] = mapped_column(String(10))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # NULL: never expires


class BrowserSession(Base):
    """A signed-in browser: the cookie holds ``ps_<secret>``, stored here only as its SHA-256,
    never the API token itself. Signing out deletes the row; revoking the token deletes all
    of its sessions."""

    __tablename__ = "browser_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"),
                                          index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class IdempotencyKey(Base):
    """An ``Idempotency-Key`` a caller sent with a POST that created something: the same key
    with the same body returns what the first request created instead of creating it again."""

    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(String(100), primary_key=True)
    route: Mapped[str] = mapped_column(String(50), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    # What was created: deleting the job forgets the key.
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Analysis(Base):
    """A loss-valley analysis of a finished pruning job against its SGD reference (its own twin,
    or another finished job): queued, run by a worker with its own progress, result kept here."""

    __tablename__ = "analyses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    # None: the job's own SGD twin. Deleting the reference job deletes the comparison too.
    reference_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Who started it (the token name): quotas count it, and only they or an admin act on it.
    owner: Mapped[str | None] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.QUEUED)
    dispatched_at: Mapped[datetime | None]  # the outbox, as on Job
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class Artifact(Base):
    """A file a job produced for download (the exported small model), with its SHA-256: a
    download is refused when the file on disk no longer matches."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("job_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))  # file name inside the job's export folder
    format: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserModel(Base):
    """A model pushed to the service under a name: its versions are uploads of the same name."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    owner: Mapped[str] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    versions: Mapped[list[ModelVersion]] = relationship(
        back_populates="model", cascade="all, delete-orphan", passive_deletes=True,
        order_by="ModelVersion.version.desc()")


class ModelVersion(Base):
    """One upload: stored as sent, inspected by a worker (the API never runs it), then ready
    for jobs or failed with the reason. ``inspection`` holds what the worker measured."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(10))  # "graph" (JSON + safetensors) or "onnx"
    input_shape: Mapped[list[int] | None] = mapped_column(JSON)
    num_classes: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.QUEUED)
    error: Mapped[str | None] = mapped_column(Text)
    inspection: Mapped[dict[str, Any] | None]
    dispatched_at: Mapped[datetime | None]  # the outbox, as on Job
    worker_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    model: Mapped[UserModel] = relationship(back_populates="versions")
    files: Mapped[list[ModelFile]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="selectin")


class ModelFile(Base):
    """An uploaded (or, for ONNX, converted) file of a version, kept in the database so every
    worker host reads it without a shared disk. ``data`` is deferred: lists never load it."""

    __tablename__ = "model_files"
    __table_args__ = (UniqueConstraint("version_id", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"),
                                            index=True)
    kind: Mapped[str] = mapped_column(String(10))  # "graph", "weights" or "onnx"
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
