"""Pushed models: their versions as uploaded, the inspection a worker records, and what a job
may name. Plain functions that never commit (the request or the task owns the transaction)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Job, ModelFile, ModelVersion, UserModel
from backend.services.dispatch import mark_pending
from backend.services.model_uploads import Upload
from pruneboard.spec.service import StoredModel
from pruneboard.status import JobStatus

READY = "ready"
FAILED = "failed"
UNFINISHED = (JobStatus.QUEUED, JobStatus.RUNNING)


def find_model(session: Session, name: str) -> UserModel | None:
    return session.scalar(select(UserModel).where(UserModel.name == name))


def create_version(session: Session, model: UserModel | None, *, name: str, owner: str,
                   format: str, input_shape: tuple[int, int, int], num_classes: int | None,
                   files: list[Upload]) -> ModelVersion:
    """A new version of ``name`` (a new model when ``model`` is None), queued for inspection."""
    if model is None:
        model = UserModel(name=name, owner=owner)
        session.add(model)
        session.flush()
    newest = session.scalar(select(func.max(ModelVersion.version))
                            .where(ModelVersion.model_id == model.id)) or 0
    version = ModelVersion(model_id=model.id, version=newest + 1, format=format,
                           input_shape=list(input_shape), num_classes=num_classes,
                           status=JobStatus.QUEUED)
    version.files = [ModelFile(kind=f.kind, sha256=f.sha256, bytes=len(f.data), data=f.data)
                     for f in files]
    mark_pending(version)  # the outbox: "inspect version N" goes out after the commit
    session.add(version)
    session.flush()
    return version


def list_models(session: Session) -> list[UserModel]:
    return list(session.scalars(select(UserModel).order_by(UserModel.name)))


def jobs_using(session: Session, name: str) -> list[int]:
    """Unfinished jobs that run the model: it may not be deleted under them."""
    return list(session.scalars(select(Job.id).where(Job.model == name,
                                                     Job.status.in_(UNFINISHED))
                                .order_by(Job.id)))


def ready_models(session: Session) -> tuple[StoredModel, ...]:
    """Every ready version of every pushed model, with what validation needs of it."""
    rows = session.execute(select(UserModel.name, ModelVersion)
                           .join(ModelVersion, ModelVersion.model_id == UserModel.id)
                           .where(ModelVersion.status == READY)).all()
    return tuple(stored_model(name, version) for name, version in rows)


def stored_model(name: str, version: ModelVersion) -> StoredModel:
    facts = version.inspection or {}
    return StoredModel(name=name, version=version.version,
                       input_shape=tuple(version.input_shape), num_classes=facts["num_classes"],
                       params=facts["params"], flops=facts["flops"], outputs=facts["outputs"],
                       has_weights=bool(facts.get("pretrained")))


def pin_version(config: dict, models: tuple[StoredModel, ...]) -> dict:
    """The job config with a pushed model's version and init written out, so the job runs the
    version it was accepted for even after a newer one is pushed."""
    chosen = [m for m in models if m.name == config["model"]
              and config.get("model_version") in (None, m.version)]
    if not chosen:
        return config  # a built-in or a plugin's model
    newest = max(chosen, key=lambda m: m.version)
    init = config.get("init") or ("pretrained" if newest.has_weights else "random")
    return {**config, "model_version": newest.version, "init": init}


def version_files(session: Session, version_id: int) -> dict[str, bytes]:
    """The stored files of a version by kind (what a worker rebuilds the model from)."""
    rows = session.execute(select(ModelFile.kind, ModelFile.data)
                           .where(ModelFile.version_id == version_id)).all()
    return {kind: data for kind, data in rows}
