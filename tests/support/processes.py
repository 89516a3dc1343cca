"""Waiting on and stopping the real processes tests start (API servers, workers)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str,
             details: Callable[[], str] = lambda: "", interval: float = 0.1) -> object:
    """Poll until ``predicate()`` is truthy and return it; fail naming what did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{details()}")
        time.sleep(interval)


def stop_process_group(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group (a server and the worker it started), SIGKILL if it lingers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
