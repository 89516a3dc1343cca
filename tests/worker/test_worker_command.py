"""`pruneboard worker`: the processes it starts, and a real supervised CPU worker."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

import pytest
from sqlalchemy import select

from backend.models import Worker
from cli.worker_command import register, worker_processes

# cli/main.py wires the command in; this runs the module on its own, in a process of its own.
RUN_COMMAND = """
import argparse, sys
from cli import worker_command
parser = argparse.ArgumentParser(prog="pruneboard")
worker_command.register(parser.add_subparsers())
args = parser.parse_args(sys.argv[1:])
sys.exit(args.run(args))
"""


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pruneboard", exit_on_error=False)
    register(parser.add_subparsers())
    return parser.parse_args(["worker", *argv])


def test_one_solo_process_per_gpu_each_seeing_only_its_gpu():
    processes = worker_processes(gpus=[0, 2], queue="gpu-jobs", loglevel="info",
                                 environ={"PRUNEBOARD_QUEUE_NAME": "other"})
    assert [p.env["CUDA_VISIBLE_DEVICES"] for p in processes] == ["0", "2"]
    for process in processes:
        assert process.env["PRUNEBOARD_WORKER_DEVICE"] == "cuda"
        assert process.env["PRUNEBOARD_QUEUE_NAME"] == "gpu-jobs"
        command = " ".join(process.command)
        assert "-A worker.app worker --pool solo --concurrency 1" in command
        assert "--queues gpu-jobs" in command
    [cpu] = worker_processes(gpus=None, queue="q", loglevel="debug", environ={})
    assert (cpu.env["PRUNEBOARD_WORKER_DEVICE"], cpu.env["CUDA_VISIBLE_DEVICES"]) == ("cpu", "")


@pytest.mark.parametrize("argv", [["--gpus", "a"], ["--gpus", "0,0"], ["--gpus", "-1"],
                                  ["--cpu", "--gpus", "0"], []])
def test_bad_device_choices_are_refused(argv):
    with pytest.raises((SystemExit, argparse.ArgumentError)):
        parse(*argv)


def test_a_cpu_worker_runs_jobs_and_stops_cleanly_on_sigterm(private_pg, private_pg_env,
                                                             enqueue, tmp_path):
    log_path = tmp_path / "command.log"
    env = {**private_pg_env, "OMP_NUM_THREADS": "1", "PRUNEBOARD_HEARTBEAT_INTERVAL_S": "0.5"}
    queue = env.pop("PRUNEBOARD_QUEUE_NAME")
    with log_path.open("wb") as log:
        command = subprocess.Popen(
            [sys.executable, "-c", RUN_COMMAND, "worker", "--cpu", "--queue", queue],
            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        job_id = private_pg.create_job()
        enqueue({**env, "PRUNEBOARD_QUEUE_NAME": queue}, job_id)
        job = private_pg.wait_status(job_id, ("succeeded", "failed"), timeout=90)
        assert job.status == "succeeded", job.error
        assert job.worker_id.endswith(":cpu")

        command.send_signal(signal.SIGTERM)
        assert command.wait(timeout=30) == 0, log_path.read_text()
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()
    # The child stopped cleanly too: it removed its row from the worker list on the way out.
    with private_pg.engine.connect() as connection:
        assert connection.execute(select(Worker.id)).all() == []
    assert f"worker(s) on queue {queue!r}: cpu pid" in log_path.read_text()
