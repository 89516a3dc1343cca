"""Worker queries: what the live workers can run. Plain functions that never commit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Worker, utcnow
from backend.settings import Settings


def live_dataset_folders(session: Session, settings: Settings) -> list[dict[str, Any]]:
    """The dataset folders live workers report (``Worker.datasets``), each (dataset, data_dir)
    once: the first report by worker id wins. Live: a heartbeat newer than
    ``heartbeat_timeout_s``, the age at which the reaper takes a worker's jobs away, so a job is
    never accepted for a folder only a dead worker had."""
    cutoff = utcnow() - timedelta(seconds=settings.heartbeat_timeout_s)
    rows = session.execute(select(Worker.datasets).where(Worker.heartbeat_at > cutoff)
                           .order_by(Worker.id)).scalars()
    folders: dict[tuple[str, str], dict[str, Any]] = {}
    for datasets in rows:
        for entry in datasets or []:  # NULL: a row written before workers reported datasets
            if isinstance(entry, dict) and "dataset" in entry and "data_dir" in entry:
                folders.setdefault((entry["dataset"], entry["data_dir"]), entry)
    return list(folders.values())


def live_plugin_names(session: Session, settings: Settings) -> tuple[list[str], list[str]]:
    """The model and dataset names the plugins of live workers register (``Worker.plugins``)."""
    cutoff = utcnow() - timedelta(seconds=settings.heartbeat_timeout_s)
    models: set[str] = set()
    datasets: set[str] = set()
    for plugins in session.execute(select(Worker.plugins).where(Worker.heartbeat_at > cutoff)
                                   ).scalars():
        if isinstance(plugins, dict):
            models.update(n for n in plugins.get("models") or [] if isinstance(n, str))
            datasets.update(n for n in plugins.get("datasets") or [] if isinstance(n, str))
    return sorted(models), sorted(datasets)
