"""Metric series: read, downsampled on the server with the extremes kept, and exported."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from tsdownsample import MinMaxLTTBDownsampler

from backend.db import session_scope
from backend.models import MetricPoint, MetricRollup
from backend.services.ingest import ROLLUP_WIDTHS

DEFAULT_MAX_POINTS = 1000


def series_keys(session: Session, job_id: int) -> list[str]:
    # From the coarsest rollup: a handful of rows, where the points table has millions.
    return list(session.scalars(select(MetricRollup.key).where(
        MetricRollup.job_id == job_id, MetricRollup.width == ROLLUP_WIDTHS[-1]
    ).distinct().order_by(MetricRollup.key)))


def read_series(session: Session, job_id: int, keys: list[str], *, from_step: int = 0,
                max_points: int | None = DEFAULT_MAX_POINTS) -> dict[str, dict[str, list]]:
    """{key: {"steps": [...], "values": [...]}}; each series cut to ``max_points`` by
    MinMaxLTTB (None or 0: full resolution).

    A series of up to ``_RAW_FACTOR × max_points`` points is downsampled from its points; a
    longer one from the min, max, first and last point of each rollup bucket, which are the
    points MinMaxLTTB's own preselection would keep, read from thousands of rows, not millions.
    """
    sizes = _series_sizes(session, job_id, keys, from_step) if max_points else {}
    raw_keys = [k for k in keys if not max_points or sizes.get(k, (0, 0))[0]
                <= _RAW_FACTOR * max_points]
    data = _fetch_points(session, job_id, raw_keys, from_step)
    rollup_keys = [k for k in keys if k not in raw_keys]
    for width in ROLLUP_WIDTHS:
        wanted = [k for k in rollup_keys if _rollup_width(sizes[k][1]) == width]
        data.update(_fetch_rollup_candidates(session, job_id, wanted, width, from_step))
    result = {}
    for key in keys:
        steps, values = data.get(key, (np.empty(0, np.int64), np.empty(0, np.float64)))
        if max_points and len(steps) > max_points:
            keep = _downsample(steps, values, max_points)
            steps, values = steps[keep], values[keep]
        result[key] = {"steps": steps.tolist(), "values": _json_floats(values)}
    return result


_RAW_FACTOR = 4
_MAX_CANDIDATES = 40_000


def _series_sizes(session: Session, job_id: int, keys: list[str], from_step: int
                  ) -> dict[str, tuple[int, int]]:
    """{key: (points, buckets)} at the finest rollup width, from the step's bucket on."""
    width = ROLLUP_WIDTHS[0]
    rows = session.connection().execute(
        select(MetricRollup.key, func.sum(MetricRollup.count), func.count())
        .where(MetricRollup.job_id == job_id, MetricRollup.width == width,
               MetricRollup.key.in_(keys), MetricRollup.bucket >= from_step // width)
        .group_by(MetricRollup.key)).all()
    return {key: (int(points), int(buckets)) for key, points, buckets in rows}


def _rollup_width(buckets_at_finest: int) -> int:
    return ROLLUP_WIDTHS[0] if buckets_at_finest * 4 <= _MAX_CANDIDATES else ROLLUP_WIDTHS[-1]


def _fetch_rollup_candidates(session: Session, job_id: int, keys: list[str], width: int,
                             from_step: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if not keys:
        return {}
    r = MetricRollup
    columns = (r.first_step, r.first_value, r.min_step, r.min_value, r.max_step, r.max_value,
               r.last_step, r.last_value)
    where = (r.job_id == job_id, r.key.in_(keys), r.width == width,
             r.bucket >= from_step // width)
    if session.bind.dialect.name == "postgresql":
        # One row of eight arrays per series: thousands of rows become ten.
        query = select(r.key, *(func.array_agg(c) for c in columns)).where(*where)
        tables = {key: np.array(arrays, dtype=np.float64).T for key, *arrays in
                  session.connection().execute(query.group_by(r.key))}
    else:
        rows = session.connection().execute(select(r.key, *columns).where(*where)
                                            .order_by(r.key)).all()
        tables = {key: np.array([row[1:] for row in group], dtype=np.float64)
                  for key, group in itertools.groupby(rows, key=lambda row: row[0])}
    result = {}
    for key, table in tables.items():
        steps = table[:, 0::2].ravel().astype(np.int64)
        steps, first = np.unique(steps, return_index=True)  # sorted, one point per step
        values = table[:, 1::2].ravel()[first]
        keep = steps >= from_step
        result[key] = (steps[keep], values[keep])
    return result


def _downsample(steps: np.ndarray, values: np.ndarray, max_points: int) -> np.ndarray:
    finite = np.isfinite(values)
    if not finite.all():  # MinMaxLTTB needs finite values; keep the rest out of the sample
        index = np.flatnonzero(finite)
        return index[_downsample(steps[index], values[index], max_points)]
    if max_points < 4:
        return np.linspace(0, len(steps) - 1, max_points).round().astype(np.int64)
    return MinMaxLTTBDownsampler().downsample(steps, values, n_out=max_points)


def _fetch_points(session: Session, job_id: int, keys: list[str], from_step: int
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if not keys:
        return {}
    rows = session.execute(
        select(MetricPoint.key, MetricPoint.step, MetricPoint.value)
        .where(MetricPoint.job_id == job_id, MetricPoint.key.in_(keys),
               MetricPoint.step >= from_step)
        .order_by(MetricPoint.key, MetricPoint.step)).all()
    grouped: dict[str, tuple[list, list]] = {}
    for key, step, value in rows:
        steps, values = grouped.setdefault(key, ([], []))
        steps.append(step)
        values.append(value)
    return {key: (np.asarray(s, np.int64), np.asarray(v, np.float64))
            for key, (s, v) in grouped.items()}


def _json_floats(values: np.ndarray) -> list[float | None]:
    # JSON has no NaN or infinity: those points travel as null.
    if np.isfinite(values).all():
        return values.tolist()
    return [v if np.isfinite(v) else None for v in values.tolist()]


def metrics_csv(database_url: str, job_id: int) -> Iterator[str]:
    """Every point of every series as CSV rows, streamed in chunks. It opens its own session:
    the response outlives the request's."""
    with session_scope(database_url) as session:
        yield from _csv_rows(session, job_id)


def _csv_rows(session: Session, job_id: int) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["key", "step", "value", "wall_time"])
    query = (select(MetricPoint.key, MetricPoint.step, MetricPoint.value, MetricPoint.wall_time)
             .where(MetricPoint.job_id == job_id)
             .order_by(MetricPoint.key, MetricPoint.step)
             .execution_options(yield_per=5000))
    for row in session.execute(query):
        writer.writerow(row)
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
