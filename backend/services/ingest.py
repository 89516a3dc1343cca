"""The one write path for metric points, and the rollups that keep large series cheap to read.

Points go in as multi-row INSERT … ON CONFLICT (job, key, step) DO NOTHING, so a redelivered
batch never duplicates a point. Only the rows that really went in (RETURNING) update the
rollups, so those stay exact under redelivery too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import case, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from backend.models import MetricPoint, MetricRollup

ROLLUP_WIDTHS = (64, 4096)

Point = tuple[str, int, float, float]  # key, step, value, wall time


def insert_points(session: Session, job_id: int, points: Sequence[Point]) -> int:
    """Store points, skipping (key, step) pairs already stored; returns how many went in."""
    if not points:
        return 0
    if session.bind.dialect.name == "postgresql":
        # A crash may lose the last batches; the job resumes from a checkpoint taken before
        # them and sends them again, so waiting for the disk here buys nothing.
        session.execute(text("SET LOCAL synchronous_commit = off"))
        return _insert_points_postgresql(session, job_id, points)
    insert = _insert_for(session.bind.dialect.name)
    # One cached statement run as "insertmanyvalues": SQLAlchemy batches the rows into
    # multi-row VALUES itself, without compiling a new statement per batch.
    statement = (insert(MetricPoint.__table__)
                 .on_conflict_do_nothing(index_elements=["job_id", "key", "step"])
                 .returning(MetricPoint.key, MetricPoint.step, MetricPoint.value))
    rows = [{"job_id": job_id, "key": k, "step": s, "value": v, "wall_time": w}
            for k, s, v, w in points]
    inserted = session.connection().execute(statement, rows).all()
    if inserted:
        _update_rollups(session, job_id, inserted, insert)
    return len(inserted)


# COPY into a scratch table, then one INSERT … SELECT that skips duplicates: the rows cross
# the wire once, with no per-row SQL text to build or parse.
_PG_MERGE = """
INSERT INTO metric_points (job_id, key, step, value, wall_time)
SELECT job_id, key, step, value, wall_time FROM incoming_points
ON CONFLICT (job_id, key, step) DO NOTHING
RETURNING key, step, value
"""


def _insert_points_postgresql(session: Session, job_id: int, points: Sequence[Point]) -> int:
    cursor = session.connection().connection.driver_connection.cursor()
    cursor.execute("CREATE TEMP TABLE IF NOT EXISTS incoming_points (job_id bigint, key text, "
                   "step integer, value double precision, wall_time double precision) "
                   "ON COMMIT DELETE ROWS")
    cursor.execute("TRUNCATE incoming_points")
    with cursor.copy("COPY incoming_points (job_id, key, step, value, wall_time) "
                     "FROM STDIN") as copy:
        for key, step, value, wall_time in points:
            copy.write_row((job_id, key, step, value, wall_time))
    inserted = session.execute(text(_PG_MERGE)).all()
    if inserted:
        _update_rollups(session, job_id, inserted, postgresql.insert)
    return len(inserted)


def _insert_for(dialect: str):
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise ValueError(f"unsupported database {dialect}: use PostgreSQL or SQLite")


def _update_rollups(session: Session, job_id: int,
                    points: Iterable[tuple[str, int, float]], insert) -> None:
    buckets: dict[tuple[str, int, int], dict] = {}
    for key, step, value in points:
        for width in ROLLUP_WIDTHS:
            entry = buckets.get((key, width, step // width))
            if entry is None:
                buckets[(key, width, step // width)] = {
                    "job_id": job_id, "key": key, "width": width, "bucket": step // width,
                    "count": 1, "min_step": step, "min_value": value, "max_step": step,
                    "max_value": value, "first_step": step, "first_value": value,
                    "last_step": step, "last_value": value}
                continue
            entry["count"] += 1
            if value < entry["min_value"]:
                entry["min_step"], entry["min_value"] = step, value
            if value > entry["max_value"]:
                entry["max_step"], entry["max_value"] = step, value
            if step < entry["first_step"]:
                entry["first_step"], entry["first_value"] = step, value
            if step > entry["last_step"]:
                entry["last_step"], entry["last_value"] = step, value
    statement = insert(MetricRollup.__table__)
    statement = statement.on_conflict_do_update(index_elements=["job_id", "key", "width", "bucket"],
                                                set_=_merge_rollup(statement.excluded))
    session.connection().execute(statement, list(buckets.values()))


def _merge_rollup(new) -> dict:
    old = MetricRollup.__table__.c

    def take_new_when(better, step_column, value_column):
        # SET expressions read the row as it was, so both columns compare old values.
        return {column: case((better, new[column]), else_=old[column])
                for column in (step_column, value_column)}

    return {"count": old.count + new.count,
            **take_new_when(new.min_value < old.min_value, "min_step", "min_value"),
            **take_new_when(new.max_value > old.max_value, "max_step", "max_value"),
            **take_new_when(new.first_step < old.first_step, "first_step", "first_value"),
            **take_new_when(new.last_step > old.last_step, "last_step", "last_value")}
