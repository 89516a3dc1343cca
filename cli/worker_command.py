"""`pruneboard worker`: Celery worker processes that run queued jobs, one per GPU or one on the CPU.

CUDA does not survive a fork, so each process uses Celery's solo pool (the job runs in the process
itself) and sees exactly one GPU through CUDA_VISIBLE_DEVICES. This command starts the processes,
forwards SIGINT/SIGTERM to them (the first asks each to hand its job back to the queue and exit,
the second is Celery's cold shutdown) and exits when they have.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cli.errors import UsageError

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class WorkerProcess:
    name: str
    command: list[str]
    env: dict[str, str]


def register(commands) -> None:
    parser = commands.add_parser("worker", help="run job workers (one per GPU, or one on the CPU)",
                                 description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--cpu", action="store_true", help="one worker that trains on the CPU")
    where.add_argument("--gpus", type=_gpu_ids, metavar="IDS",
                       help="one worker per listed GPU, e.g. 0,1")
    parser.add_argument("--queue", help="queue to take jobs from (default: "
                        "PRUNEBOARD_QUEUE_NAME, else pruneboard)")
    parser.add_argument("--loglevel", default="info", choices=LOG_LEVELS,
                        help="Celery's log level (default info)")
    parser.add_argument("--data-root", type=Path, action="append", metavar="PATH",
                        help="a folder whose sub-folders hold datasets; jobs name those "
                             "sub-folders in data_dir (repeatable, the first root having a "
                             "name wins; default: PRUNEBOARD_DATA_ROOTS, else DATA_DIR/datasets)")
    parser.set_defaults(run=run)


def worker_processes(*, gpus: list[int] | None, queue: str, loglevel: str,
                     environ: dict[str, str] | None = None,
                     data_roots: list[Path] | None = None) -> list[WorkerProcess]:
    """The processes to start: commands and environments, nothing started yet."""
    base = dict(os.environ if environ is None else environ)
    # The reaper re-sends lost jobs on the worker's own queue, so the setting must match -Q.
    base["PRUNEBOARD_QUEUE_NAME"] = queue
    if data_roots:
        # Absolute: the children resolve nothing against a working folder of their own.
        base["PRUNEBOARD_DATA_ROOTS"] = os.pathsep.join(
            str(root.expanduser().resolve()) for root in data_roots)
    devices = [("cpu", "cpu", "")] if gpus is None else [
        (f"gpu{gpu}", "cuda", str(gpu)) for gpu in gpus]
    processes = []
    for name, device, visible in devices:
        # PCI order makes CUDA's numbering that of nvidia-smi, which is what users pass.
        env = {**base, "PRUNEBOARD_WORKER_DEVICE": device, "CUDA_VISIBLE_DEVICES": visible,
               "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        command = [sys.executable, "-m", "celery", "-A", "worker.app", "worker",
                   "--pool", "solo", "--concurrency", "1", "--loglevel", loglevel,
                   "--queues", queue, "--hostname", f"{name}-{os.getpid()}@%h",
                   # Cancellation goes through the database, so the worker-to-worker chatter that
                   # syncs revoked ids is not needed, and skipping it saves seconds at start.
                   "--without-mingle", "--without-gossip"]
        processes.append(WorkerProcess(name, command, env))
    return processes


def run(args: argparse.Namespace) -> int:
    from backend.settings import get_settings

    if args.gpus is not None:
        _check_gpus(args.gpus)
    settings = get_settings()
    queue = args.queue or settings.queue_name
    processes = worker_processes(gpus=args.gpus, queue=queue, loglevel=args.loglevel,
                                 data_roots=args.data_root)
    roots = ([root.expanduser().resolve() for root in args.data_root] if args.data_root
             else settings.resolved_data_roots)
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def forward(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for process in processes:
            # Own session: a Ctrl-C in the terminal reaches the children once, through us,
            # instead of twice (which Celery would take as a cold shutdown).
            children[process.name] = subprocess.Popen(process.command, env=process.env,
                                                      start_new_session=True,
                                                      preexec_fn=_die_with_parent)
        pids = ", ".join(f"{name} pid {child.pid}" for name, child in children.items())
        print(f"pruneboard: worker(s) on queue {queue!r}: {pids}; data roots: "
              f"{os.pathsep.join(map(str, roots))}", file=sys.stderr, flush=True)
        return _supervise(children, lambda: stopping)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for child in children.values():
            if child.poll() is None:
                child.kill()
                child.wait()


def _supervise(children: dict[str, subprocess.Popen], stopping) -> int:
    """Wait for every child. One that exits on its own (crash, bad settings) stops the others:
    a process manager restarting the whole command then sees one clear failure."""
    status = 0
    while any(child.poll() is None for child in children.values()):
        for name, child in children.items():
            code = child.poll()
            if code is None or stopping() or status:
                continue
            print(f"pruneboard: worker {name} exited with status {code}; stopping the others",
                  file=sys.stderr, flush=True)
            status = _exit_status(code) or 1
            for other in children.values():
                if other.poll() is None:
                    other.send_signal(signal.SIGTERM)
        time.sleep(0.2)
    codes = [_exit_status(child.returncode) for child in children.values()]
    return status or max(codes, default=0)


def _exit_status(returncode: int) -> int:
    # Popen reports death by signal N as -N; a shell reports it as 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def _gpu_ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected GPU numbers like 0,1; got {text!r}") from None
    if not ids or min(ids) < 0 or len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError(f"expected distinct GPU numbers like 0,1; got {text!r}")
    return ids


def _check_gpus(gpus: list[int]) -> None:
    import torch

    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        return  # our own view is restricted; the children get the ids asked for
    count = torch.cuda.device_count()
    if count == 0:
        raise UsageError("--gpus: no CUDA device is visible here; use --cpu")
    missing = [gpu for gpu in gpus if gpu >= count]
    if missing:
        raise UsageError(f"--gpus: this machine has GPUs 0..{count - 1}; no GPU "
                         f"{', '.join(map(str, missing))}")


def _die_with_parent() -> None:
    # Linux sends the worker SIGTERM if this command dies, even by SIGKILL: no orphaned worker
    # keeps taking jobs with nobody supervising it.
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
