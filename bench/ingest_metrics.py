"""How fast do metric points reach PostgreSQL through the worker's EventWriter?

    .venv/bin/python bench/ingest_metrics.py [--points 200000] [--baseline-points 5000]

Train events (8 scalars + one sparsity value per layer) go through ``worker.writer.EventWriter``
with the service's default batching (0.5 s or 500 points; each batch is one transaction: the
points through backend.services.ingest, the job row and a progress row) into a fresh,
Alembic-migrated database that is dropped at the end. Beside it: the same points through
``ingest.insert_points`` alone (where the time goes), and the baseline, the naive writer: one ORM
INSERT per point and one commit per event. All run in this process, in interleaved rounds after a
warm-up; medians are compared (DESIGN.md §5).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

from _service import temporary_postgres
from _timing import OtherLoad
from sqlalchemy import create_engine, insert, text
from sqlalchemy.orm import Session

TARGET = 50_000  # points per second, from the job-service issue


def train_events(count: int, layers: int, first_step: int = 1):
    """``count`` train events shaped like the engine's, 8 + ``layers`` points each."""
    names = [f"features.{i}" for i in range(layers)]
    for index in range(count):
        step = first_step + index
        yield {"type": "train", "step": step, "epoch": step // 100, "train_loss": 1 / step,
               "lr": 0.1, "threshold": 1e-3 * step, "weight_sparsity": 0.5,
               "group_sparsity": 0.4, "remaining_params": 0.6, "remaining_flops": 0.5,
               "norm_ratio": 0.3, "elapsed_s": 1.0,
               "layer_group_sparsity": {name: (step % 97) / 97 for name in names}}


def run_writer(url: str, job_id: int, events: int, layers: int) -> float:
    from backend.settings import Settings
    from worker.writer import EventWriter

    writer = EventWriter(Settings(database_url=url), job_id, attempt=1)
    start = time.perf_counter()
    for event in train_events(events, layers):
        writer(event)
    writer.close()
    return time.perf_counter() - start


def run_naive(url: str, job_id: int, events: int, layers: int) -> float:
    """One INSERT per point through the ORM, one commit per event: what a first version does."""
    from backend.db import get_engine
    from backend.models import MetricPoint
    from worker.series import LAYER_PREFIX, TRAIN_KEYS

    start = time.perf_counter()
    with Session(get_engine(url)) as session:
        for event in train_events(events, layers):
            now = time.time()
            values = [(k, event[k]) for k in TRAIN_KEYS]
            values += [(LAYER_PREFIX + k, v) for k, v in event["layer_group_sparsity"].items()]
            for key, value in values:
                session.add(MetricPoint(job_id=job_id, key=key, step=event["step"],
                                        value=value, wall_time=now))
                session.flush()
            session.commit()
    return time.perf_counter() - start


def run_ingest_only(url: str, job_id: int, events: int, layers: int) -> float:
    """The same points straight into backend.services.ingest.insert_points (which the writer
    calls) in 5,000-point batches: how much of the time is the write path, not the writer."""
    from backend.db import session_scope
    from backend.services.ingest import insert_points
    from worker.series import LAYER_PREFIX, TRAIN_KEYS

    now = time.time()
    points = [(key, event["step"], float(event[key]), now)
              for event in train_events(events, 0) for key in TRAIN_KEYS]
    points += [(LAYER_PREFIX + f"features.{i}", step, 0.5, now)
               for step in range(1, events + 1) for i in range(layers)]
    start = time.perf_counter()
    for offset in range(0, len(points), 5000):
        with session_scope(url) as session:
            insert_points(session, job_id, points[offset:offset + 5000])
    return time.perf_counter() - start


def new_job(url: str) -> int:
    from backend.db import get_engine
    from backend.models import Job

    with get_engine(url).begin() as connection:
        return connection.scalar(insert(Job).values(
            owner="bench", config={}, model="mlp", dataset="digits", method="sdprun",
            status="running", attempt=1, cancel_requested=False, step=0, latest={}
        ).returning(Job.id))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--baseline-points", type=int, default=5_000)
    parser.add_argument("--layers", type=int, default=92, help="per-layer series (default 92: "
                        "100 points per train event)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    per_event = 8 + args.layers
    events, baseline_events = args.points // per_event, max(1, args.baseline_points // per_event)

    # The machine may be shared: measure what others use while we are idle, to print beside
    # the numbers (during the run PostgreSQL's own processes would count as "others").
    other = OtherLoad()
    time.sleep(2)
    other_cpus = other.seconds() / 2
    with temporary_postgres() as url:
        with create_engine(url).connect() as connection:
            version = connection.execute(text("SHOW server_version")).scalar()
        runs = {"writer": (run_writer, events), "ingest": (run_ingest_only, events),
                "naive": (run_naive, baseline_events)}
        # Warm-up: connections, prepared statements, SQLAlchemy's statement cache.
        for function, _ in runs.values():
            function(url, new_job(url), max(1, 2000 // per_event), args.layers)
        rates: dict[str, list[float]] = {label: [] for label in runs}
        for index in range(args.rounds):
            shift = index % len(runs)
            for label in list(runs)[shift:] + list(runs)[:shift]:
                function, count = runs[label]
                seconds = function(url, new_job(url), count, args.layers)
                rates[label].append(count * per_event / seconds)
        report(rates, events * per_event, baseline_events * per_event, per_event, version,
               other_cpus, args)


def report(rates, points: int, baseline_points: int, per_event: int, version: str,
           other_cpus: float, args) -> None:
    medians = {label: statistics.median(values) for label, values in rates.items()}
    writer, naive = medians["writer"], medians["naive"]
    today = datetime.date.today().isoformat()
    print(f"Metric ingestion into PostgreSQL {version}, {os.cpu_count()} CPUs, {today}; "
          f"{per_event} points per train event, median of {args.rounds} rounds "
          f"(python {sys.version.split()[0]}); before the run, other processes kept "
          f"{other_cpus:.1f} CPUs busy\n")
    print("| writer | points per round | points/s (median) | range | vs naive |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, title, count in (
            ("writer", "EventWriter, default batching (0.5 s / 500 points)", points),
            ("ingest", "ingest.insert_points alone, 5,000-point batches", points),
            ("naive", "naive: ORM INSERT per point, commit per event", baseline_points)):
        low, high = min(rates[label]), max(rates[label])
        print(f"| {title} | {count:,} | {medians[label]:,.0f} | {low:,.0f}–{high:,.0f} | "
              f"{medians[label] / naive:.1f}× |")
    verdict = "meets" if writer >= TARGET else "misses"
    print(f"\nEventWriter {verdict} the target of {TARGET:,} points/s "
          f"({writer / TARGET:.2f}× of it).")


if __name__ == "__main__":
    main()
