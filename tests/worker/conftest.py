"""Worker test kit: job rows made with SQLAlchemy, real `celery worker` processes, polling.

Workers are started as `python -m celery -A worker.app worker` subprocesses configured only by
PRUNEBOARD_* variables, as in production; the producer is the same Celery app, so the message is
exactly what the API sends. Every worker is stopped (or killed) at teardown.

Tests run with --import-mode=importlib, where a test module cannot import this file, so the kit
is handed out as fixtures (``pg``, ``workers``, ``enqueue``, ``wait_for``, ``make_db``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from itertools import groupby
from pathlib import Path

import pytest
from databases import temporary_postgres
from processes import wait_for as _wait_for
from servers import PostgresServer, RedisServer
from sqlalchemy import func, insert, select

from backend.db import get_engine
from backend.models import Job, JobChange, JobLog, MetricPoint, utcnow
from backend.settings import Settings
from worker.series import EVAL_KEYS, LAYER_PREFIX, TRAIN_KEYS

ROOT = Path(__file__).resolve().parents[2]
SMALL_JOB = {"model": "mlp", "mlp_widths": [32, 16], "epochs": 3, "log_interval": 5}
DIGITS_STEPS_PER_EPOCH = 1437 // 64  # 1437 training digits, batch size 64, last batch dropped
FAST_SETTINGS = {
    "PRUNEBOARD_HEARTBEAT_INTERVAL_S": "0.5",
    "PRUNEBOARD_HEARTBEAT_TIMEOUT_S": "3",
    "PRUNEBOARD_METRIC_FLUSH_INTERVAL_S": "0.2",
    "PRUNEBOARD_MAX_ATTEMPTS": "3",
    "PRUNEBOARD_WORKER_DEVICE": "cpu",
    # Two cores shared with PostgreSQL and the test: torch's second thread only spins.
    "OMP_NUM_THREADS": "1",
}


class Db:
    """Reads and writes the rows a test needs, each call its own short transaction."""

    def __init__(self, url: str):
        self.url = url
        self.engine = get_engine(url)

    def create_job(self, config: dict | None = None, **fields) -> int:
        config = dict(SMALL_JOB if config is None else config)
        # Marked sent: a test that sends the message itself (``enqueue``) does not want the
        # workers' dispatchers to send it first; pass dispatched_at=None for a pending one.
        values = {"owner": "test", "config": config, "model": config.get("model", "mlp"),
                  "dataset": config.get("dataset", "digits"),
                  "method": config.get("method", "sdprun"), "status": "queued",
                  "cancel_requested": False, "attempt": 0, "step": 0, "latest": {},
                  "dispatched_at": utcnow(), **fields}
        with self.engine.begin() as connection:
            job_id = connection.scalar(insert(Job).values(**values).returning(Job.id))
            connection.execute(insert(JobChange).values(job_id=job_id, status=values["status"],
                                                        step=0, latest={}, note="submitted"))
        return job_id

    def job(self, job_id: int):
        with self.engine.connect() as connection:
            return connection.execute(select(Job.__table__).where(Job.id == job_id)).one()

    def set(self, job_id: int, **values) -> None:
        with self.engine.begin() as connection:
            connection.execute(Job.__table__.update().where(Job.id == job_id).values(**values))

    def points(self, job_id: int) -> list[tuple[str, int, float]]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(
                select(MetricPoint.key, MetricPoint.step, MetricPoint.value)
                .where(MetricPoint.job_id == job_id).order_by(MetricPoint.key, MetricPoint.step))]

    def statuses(self, job_id: int) -> list[str]:
        with self.engine.connect() as connection:
            return list(connection.scalars(select(JobChange.status).where(
                JobChange.job_id == job_id).order_by(JobChange.id)))

    def logs(self, job_id: int) -> list[str]:
        with self.engine.connect() as connection:
            return list(connection.scalars(select(JobLog.message).where(
                JobLog.job_id == job_id).order_by(JobLog.id)))

    def assert_points_once(self, job_id: int) -> int:
        """Every (key, step) of the job is stored once (the unique constraint says so; the count
        says nothing got around it); returns how many points there are."""
        mine = MetricPoint.job_id == job_id
        pairs = select(MetricPoint.key, MetricPoint.step).where(mine).distinct().subquery()
        with self.engine.connect() as connection:
            total = connection.scalar(select(func.count()).select_from(MetricPoint).where(mine))
            distinct = connection.scalar(select(func.count()).select_from(pairs))
        assert total == distinct > 0, f"job {job_id}: {total} points, {distinct} distinct"
        return total

    def history(self, job_id: int) -> list[str]:
        """Status history with progress rows folded: queued, running, succeeded."""
        return [status for status, _ in groupby(self.statuses(job_id))]

    def assert_complete_series(self, job_id: int, *, epochs: int, log_interval: int) -> None:
        """Every series of a digits run has exactly one point at each step it should have."""
        total = epochs * DIGITS_STEPS_PER_EPOCH
        train_steps = [s for s in range(1, total + 1) if s % log_interval == 0 or s == total]
        eval_steps = [DIGITS_STEPS_PER_EPOCH * e for e in range(1, epochs + 1)]
        series = {key: [step for _, step, _ in rows]
                  for key, rows in groupby(self.points(job_id), key=lambda row: row[0])}
        layer_keys = [key for key in series if key.startswith(LAYER_PREFIX)]
        assert layer_keys, f"no per-layer series among {sorted(series)}"
        expected = {key: train_steps for key in (*TRAIN_KEYS, *layer_keys)}
        expected.update({key: eval_steps for key in EVAL_KEYS if key != "test_top5"})
        assert sorted(series) == sorted(expected)
        for key, steps in expected.items():
            assert series[key] == steps, f"{key}: got steps {series[key]}, expected {steps}"

    def wait_status(self, job_id: int, statuses: tuple[str, ...], *, timeout: float,
                    workers: Workers | None = None):
        def describe() -> str:
            job = self.job(job_id)
            text = (f"job {job_id}: status={job.status} step={job.step}/{job.total_steps} "
                    f"attempt={job.attempt} error={job.error}\nlogs: {self.logs(job_id)}")
            return text + ("\n" + workers.output() if workers else "")

        _wait_for(lambda: self.job(job_id).status in statuses, timeout=timeout,
                 what=f"job {job_id} to become {' or '.join(statuses)}", details=describe)
        return self.job(job_id)


class Workers:
    """`celery worker` subprocesses of one test, with their output kept for failure messages."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.processes: list[tuple[subprocess.Popen, Path]] = []

    def start(self, env: dict[str, str]) -> subprocess.Popen:
        log_path = self.tmp_path / f"worker-{len(self.processes)}.log"
        command = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool", "solo",
                   "--concurrency", "1", "--loglevel", "info", "--without-mingle",
                   "--without-gossip", "-n", f"test{len(self.processes)}@%h",
                   "-Q", env["PRUNEBOARD_QUEUE_NAME"]]
        full_env = {**os.environ, **FAST_SETTINGS, **env}
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=log_file,
                                       stderr=subprocess.STDOUT)
        self.processes.append((process, log_path))
        return process

    def output(self, lines: int = 40) -> str:
        parts = []
        for process, log_path in self.processes:
            tail = log_path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- worker pid {process.pid} (exit {process.poll()}) ---\n"
                         + "\n".join(tail))
        return "\n".join(parts)

    def stop_all(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def workers(tmp_path):
    pool = Workers(tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture(scope="module")
def module_postgres_url(postgres_url):
    """A database of the module's own: a live worker reaps, and its dispatcher sends, every
    queued job of its database, so it must not see the rows other test modules leave behind."""
    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with temporary_postgres(admin_url) as url:
        yield url


@pytest.fixture(scope="module")
def pg_worker(module_postgres_url, redis_url, tmp_path_factory):
    """One worker on PostgreSQL + Redis shared by a module's tests, on a queue of its own (each
    start costs seconds of imports). Tests that kill or stop workers start their own."""
    tmp_path = tmp_path_factory.mktemp("shared-worker")
    queue = f"pruneboard-test-{uuid.uuid4().hex[:8]}"
    env = {"PRUNEBOARD_DATABASE_URL": module_postgres_url, "PRUNEBOARD_BROKER_URL": redis_url,
           "PRUNEBOARD_QUEUE_NAME": queue, "PRUNEBOARD_DATA_DIR": str(tmp_path)}
    pool = Workers(tmp_path)
    pool.start(env)
    yield pool, env
    pool.stop_all()
    _forget_redis_queue(redis_url, queue)


@pytest.fixture
def pg(module_postgres_url) -> Db:
    """The database of the module's shared worker (``pg_worker``)."""
    return Db(module_postgres_url)


@pytest.fixture
def private_postgres_url(postgres_url):
    """A database of this test's own. Every live worker reaps every lost job of its database
    (and re-sends it on its own queue), so a recovery test must not share one with workers of
    other tests."""
    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with temporary_postgres(admin_url) as url:
        yield url


@pytest.fixture
def make_db() -> Callable[[str], Db]:
    return Db


@pytest.fixture
def wait_for():
    return _wait_for


@pytest.fixture
def private_pg(private_postgres_url) -> Db:
    return Db(private_postgres_url)


@pytest.fixture
def private_pg_env(private_postgres_url, redis_url, queue_name, tmp_path) -> dict[str, str]:
    env = {"PRUNEBOARD_DATABASE_URL": private_postgres_url, "PRUNEBOARD_BROKER_URL": redis_url,
           "PRUNEBOARD_QUEUE_NAME": queue_name, "PRUNEBOARD_DATA_DIR": str(tmp_path)}
    yield env
    _forget_redis_queue(redis_url, queue_name)


def settings_from(env: dict[str, str]) -> Settings:
    """The Settings a worker started with ``env`` sees (for the producer side of a test)."""
    return Settings(database_url=env.get("PRUNEBOARD_DATABASE_URL", ""),
                    broker_url=env.get("PRUNEBOARD_BROKER_URL", ""),
                    queue_name=env["PRUNEBOARD_QUEUE_NAME"],
                    data_dir=Path(env["PRUNEBOARD_DATA_DIR"]))


@pytest.fixture
def enqueue():
    """send_task("pruneboard.run_job", [id]) (or another task by name) through an app built from
    the test's settings."""
    from worker.celery_app import make_celery

    apps = []

    def send(env: dict[str, str], row_id: int, task: str = "pruneboard.run_job") -> None:
        app = make_celery(settings_from(env))
        apps.append(app)
        app.send_task(task, args=[row_id], queue=env["PRUNEBOARD_QUEUE_NAME"])

    yield send
    for app in apps:
        app.close()


def _forget_redis_queue(redis_url: str, queue_name: str) -> None:
    # A killed worker's message stays in kombu's "unacked" hash until the visibility timeout
    # (a week); drop this test's queue and such leftovers so the shared Redis stays clean.
    import json

    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(queue_name)
        for tag, payload in client.hscan_iter("unacked"):
            try:
                routing_key = json.loads(payload)[2]
            except (ValueError, IndexError, TypeError):
                continue
            if routing_key == queue_name:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    finally:
        client.close()


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()
