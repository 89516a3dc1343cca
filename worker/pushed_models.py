"""The ``pruneboard.inspect_model(version_id)`` task: rebuild a pushed model from its stored
files, run it once on its declared input, and record what it is (or why it cannot be used).

The API stores uploads without running them; this is the first place a model is built. An
ONNX upload is converted here, and the converted graph JSON and weights are stored beside it, so
every job rebuilds the same whitelisted graph without converting again. Like jobs, a version is
claimed by a conditional UPDATE (queued → running), so a duplicated message is a no-op.
"""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy import select, update

from backend.db import session_scope
from backend.models import ModelFile, ModelVersion, UserModel, utcnow
from backend.services.models import FAILED, READY, version_files
from backend.settings import Settings
from pruneboard.status import JobStatus
from pruning.user_models import ModelFileError, PushedModel, inspect, load_pushed
from worker.heartbeat import Heartbeat
from worker.outage import with_retries

log = logging.getLogger(__name__)


def inspect_model(version_id: int, *, settings: Settings, beat: Heartbeat) -> str:
    url = settings.resolved_database_url

    def claim():
        with session_scope(url) as session:
            row = session.execute(
                update(ModelVersion)
                .where(ModelVersion.id == version_id, ModelVersion.status == JobStatus.QUEUED)
                .values(status=JobStatus.RUNNING, worker_id=beat.worker_id)
                .returning(ModelVersion.input_shape, ModelVersion.num_classes,
                           ModelVersion.format)
                .execution_options(synchronize_session=False)).first()
            if row is None:
                return None
            return tuple(row.input_shape), row.num_classes, row.format, \
                version_files(session, version_id)

    claimed = with_retries(claim, link=beat.link, grace_s=settings.db_outage_grace_s,
                           what=f"claiming model version {version_id}")
    if claimed is None:
        return "skipped"
    input_shape, num_classes, file_format, files = claimed
    try:
        pushed = load_pushed(files, input_shape)
        inspection = inspect(pushed, input_shape, num_classes)
    except ModelFileError as error:
        return _finish(url, version_id, beat, FAILED, error=str(error))
    except Exception as error:  # anything else is a bug of ours: say so, keep the worker up
        log.exception("inspecting model version %s failed", version_id)
        return _finish(url, version_id, beat, FAILED,
                       error=f"inspection failed: {type(error).__name__}: {error}")
    converted = pushed if file_format == "onnx" else None
    return _finish(url, version_id, beat, READY, inspection=inspection, converted=converted)


def _finish(url: str, version_id: int, beat: Heartbeat, status: str, *,
            inspection: dict | None = None, error: str | None = None,
            converted: PushedModel | None = None) -> str:
    def write() -> int:
        with session_scope(url) as session:
            done = session.execute(
                update(ModelVersion)
                .where(ModelVersion.id == version_id, ModelVersion.status == JobStatus.RUNNING)
                .values(status=status, inspection=inspection, error=error,
                        num_classes=(inspection or {}).get("num_classes",
                                                           ModelVersion.num_classes),
                        finished_at=utcnow())
                .execution_options(synchronize_session=False)).rowcount
            if done and converted is not None:
                for kind, data in (("graph", converted.graph), ("weights", converted.weights)):
                    session.add(ModelFile(version_id=version_id, kind=kind, bytes=len(data),
                                          sha256=hashlib.sha256(data).hexdigest(), data=data))
            return done

    owned = with_retries(write, link=beat.link, grace_s=None,
                         what=f"recording model version {version_id} {status}")
    log.info("model version %s: %s%s", version_id, status, f" ({error})" if error else "")
    return status if owned else "lost"


def job_model(settings: Settings, name: str, version: int | None) -> PushedModel | None:
    """The pushed model a job runs, rebuilt from its stored files; None for a model that is
    not pushed (built in, or a plugin's). ModelFileError when the version is gone or not
    ready (deleted, say, after the job was accepted)."""
    if version is None:
        return None
    with session_scope(settings.resolved_database_url) as session:
        row = session.execute(
            select(ModelVersion.id, ModelVersion.status).join(UserModel)
            .where(UserModel.name == name, ModelVersion.version == version)).first()
        if row is None or row.status != READY:
            raise ModelFileError(f"model {name} version {version} is "
                                 f"{'gone' if row is None else row.status}; push it again")
        files = version_files(session, row.id)
    return load_pushed(files)

