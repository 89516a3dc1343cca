"""Downloadable files of a job (the exported small model), checked against their SHA-256."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Artifact
from backend.services.jobs import job_artifacts


class ArtifactChanged(Exception):
    """The file on disk is missing or no longer matches the SHA-256 recorded when it was made."""


def export_dir(artifact_dir: Path, job_id: int) -> Path:
    return job_artifacts(artifact_dir, job_id) / "export"


def list_artifacts(session: Session, job_id: int) -> list[Artifact]:
    return list(session.scalars(select(Artifact).where(Artifact.job_id == job_id)
                                .order_by(Artifact.name)))


def get_artifact(session: Session, job_id: int, name: str) -> Artifact | None:
    return session.scalar(select(Artifact).where(Artifact.job_id == job_id,
                                                 Artifact.name == name))


def verified_path(artifact_dir: Path, artifact: Artifact) -> Path:
    """The artifact's file, after checking that it still has the recorded SHA-256."""
    path = export_dir(artifact_dir, artifact.job_id) / artifact.name
    if not path.is_file():
        raise ArtifactChanged(f"{artifact.name} of job {artifact.job_id} is gone from the "
                              f"server's artifact folder")
    if sha256_of(path) != artifact.sha256:
        raise ArtifactChanged(f"{artifact.name} of job {artifact.job_id} changed on disk since "
                              f"it was exported (SHA-256 mismatch); refusing to serve it")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
