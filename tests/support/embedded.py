"""`pruneboard up` as a person runs it: a real subprocess (the API and its own worker on SQLite
and the file-system broker) on a free port, with a data folder of its own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from processes import stop_process_group

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_up(folder: Path, *args: str, **extra_env: str) -> Iterator[dict]:
    """`pruneboard up` with ``args`` added; yields url, token, data_dir, log and db_url, and stops
    the whole process group after."""
    data_dir, log_path = folder / "data", folder / "up.log"
    port = free_port()
    # Only the embedded defaults: no database or broker URL from the caller's environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRUNEBOARD_")}
    env.update(extra_env)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "up", "--port", str(port), "--data-dir",
             str(data_dir), *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not _healthy(url) or not (data_dir / "admin-token").is_file():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`pruneboard up` did not come up:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.25)
        yield {"url": url, "token": (data_dir / "admin-token").read_text().strip(),
               "data_dir": data_dir, "log": log_path,
               "db_url": f"sqlite:///{data_dir / 'pruneboard.db'}"}
    finally:
        stop_process_group(process)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/healthz", timeout=2).status_code == 200
    except (httpx.HTTPError, ValueError):
        return False
