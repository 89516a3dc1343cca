"""All service settings, from the environment (prefix PRUNEBOARD_) or a .env file."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pruneboard.spec import ServiceLimits


class Settings(BaseSettings):
    # Nested settings by double underscore: PRUNEBOARD_LIMITS__MAX_MODEL_PARAMS=...
    model_config = SettingsConfigDict(env_prefix="PRUNEBOARD_", env_file=".env", extra="ignore",
                                      env_nested_delimiter="__")

    # The embedded default: everything under one data folder, no external service.
    data_dir: Path = Path("pruneboard-data")
    database_url: str = ""        # empty: SQLite at <data_dir>/pruneboard.db
    broker_url: str = ""          # empty: kombu's filesystem transport under <data_dir>/broker
    queue_name: str = "pruneboard"  # the Celery queue jobs go to
    artifact_dir: Path | None = None  # empty: <data_dir>/artifacts
    # Folders whose sub-folders hold datasets: a job's data_dir names one of those sub-folders,
    # never a path. An os.pathsep-separated list in PRUNEBOARD_DATA_ROOTS (NoDecode: not JSON);
    # empty: <data_dir>/datasets.
    data_roots: Annotated[list[Path], NoDecode] = []

    heartbeat_interval_s: float = 3.0
    # A running job whose heartbeat is older than this is requeued from its last checkpoint.
    heartbeat_timeout_s: float = 60.0
    # A job fails for good once this many of its runs lost their worker (an outage of the
    # database or the broker is not a loss: see db_outage_grace_s).
    max_attempts: int = 3
    # How long a worker keeps retrying its database writes (with backoff) through an outage
    # before it stops the run and hands the job back; a reaper that itself could not reach the
    # database judges no heartbeat until it has been connected for heartbeat_timeout_s.
    db_outage_grace_s: float = 300.0
    # The outbox (backend.services.dispatch): how often pending "run job N" messages are sent,
    # and after how long a queued job that no worker claimed, while one sat idle, is sent again
    # (the message was lost, say in a broker restart; a duplicate is harmless).
    dispatch_interval_s: float = 2.0
    redispatch_after_s: float = 30.0
    # Redis redelivers an unacknowledged task after this long. Recovery does not rely on it (the
    # heartbeat reaper requeues lost jobs, and a redelivered message for a running job is a
    # no-op because claiming is conditional); it is long only to avoid pointless redeliveries.
    visibility_timeout_s: int = 7 * 24 * 3600
    metric_flush_interval_s: float = 0.5
    metric_flush_points: int = 500
    max_body_bytes: int = 1024 * 1024
    # A model upload (POST /models: graph JSON, weights, or an ONNX file), stored in the
    # database so every worker host can read it.
    max_model_upload_bytes: int = 256 * 1024 * 1024
    cookie_secure: bool = False
    sse_poll_interval_s: float = 0.2
    # An open event stream re-checks its token (or browser session) this often and closes once
    # it is revoked or expired.
    stream_auth_recheck_s: float = 5.0
    # Browser sessions (sign-in cookie) last this long; revoked at sign-out.
    session_max_age_s: int = 30 * 24 * 3600
    # Per-owner caps on queued + running work; over a cap a submit gets 429 with Retry-After.
    max_active_jobs_per_owner: int = 100
    max_active_analyses_per_owner: int = 20
    # What one job or analysis may ask of a worker host (pruneboard.spec.ServiceLimits).
    limits: ServiceLimits = ServiceLimits()

    @field_validator("data_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(os.pathsep) if part.strip()]
        return value

    @property
    def resolved_data_roots(self) -> list[Path]:
        """Where workers look for dataset folders, in order (an earlier root wins a name)."""
        roots = self.data_roots or [self.data_dir / "datasets"]
        return [root.expanduser().resolve() for root in roots]

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'pruneboard.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def broker_dir(self) -> Path:
        return (self.data_dir / "broker").resolve()

    @property
    def resolved_artifact_dir(self) -> Path:
        return (self.artifact_dir or self.data_dir / "artifacts").resolve()


@lru_cache
def get_settings() -> Settings:
    return Settings()
