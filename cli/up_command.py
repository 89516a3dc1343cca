"""`pruneboard up`: the whole service on one machine, with no other program to install.

The API, one local CPU worker, SQLite and Celery's file-system broker, all under one data
folder: DIR/pruneboard.db, DIR/broker/, DIR/artifacts/ and DIR/admin-token. The worker reads
datasets from the folders under DIR/datasets/ and any --data-root. Production swaps in
PostgreSQL and Redis by setting PRUNEBOARD_DATABASE_URL and PRUNEBOARD_BROKER_URL (see
docs/service.md); everything else stays the same.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from cli.errors import UsageError

ADMIN_TOKEN_NAME = "admin"
WORKER_STOP_TIMEOUT_S = 15.0


def register(commands) -> None:
    parser = commands.add_parser("up", help="run the API and a local worker (embedded mode)",
                                 description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default 127.0.0.1; 0.0.0.0 for the LAN)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("PRUNEBOARD_DATA_DIR", "pruneboard-data")),
                        help="folder for the database, queue, artifacts and admin token "
                             "(env PRUNEBOARD_DATA_DIR; default ./pruneboard-data)")
    parser.add_argument("--data-root", type=Path, action="append", metavar="PATH",
                        help="also serve the dataset folders under PATH, after DIR/datasets "
                             "(repeatable; default: PRUNEBOARD_DATA_ROOTS, "
                             f"{os.pathsep!r}-separated)")
    parser.add_argument("--no-worker", action="store_true",
                        help="serve the API only; workers run elsewhere")
    parser.set_defaults(run=run)


class _Stop(Exception):
    """SIGTERM, turned into an exception so that the worker is stopped on the way out."""


def run(args) -> int:
    _check_port_free(args.host, args.port)
    data_dir = args.data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    roots = data_roots(data_dir, args.data_root)
    # Set in our own environment so that the worker subprocess inherits the same settings.
    os.environ["PRUNEBOARD_DATA_DIR"] = str(data_dir)
    os.environ["PRUNEBOARD_DATA_ROOTS"] = os.pathsep.join(map(str, roots))

    import uvicorn

    from backend.main import create_app
    from backend.settings import Settings

    settings = Settings()
    migrate(settings.resolved_database_url)
    token = ensure_admin_token(settings.resolved_database_url, data_dir / "admin-token")
    app = create_app(settings)

    signal.signal(signal.SIGTERM, _raise_stop)
    worker = None
    url = f"http://{args.host}:{args.port}/"
    try:
        worker = None if args.no_worker else LocalWorker()
        print(f"Pruneboard at {url}\n  data:        {data_dir}\n"
              f"  data roots:  {os.pathsep.join(map(str, roots))}\n  admin token: {token}\n"
              f"  CLI:         export PRUNEBOARD_URL={url.rstrip('/')} PRUNEBOARD_TOKEN={token}",
              flush=True)
        # Open event streams would otherwise hold the shutdown until their clients leave.
        uvicorn.run(app, host=args.host, port=args.port, log_level="info",
                    timeout_graceful_shutdown=5)
    except (KeyboardInterrupt, _Stop):
        pass  # uvicorn has shut down gracefully and re-raised the signal it caught
    finally:
        if worker is not None:
            worker.stop()
    print("pruneboard stopped", file=sys.stderr)
    return 0


def data_roots(data_dir: Path, extra: list[Path] | None) -> list[Path]:
    """DIR/datasets (created), then the --data-root folders (else PRUNEBOARD_DATA_ROOTS's), as
    absolute paths, each once. A job's data_dir names a folder in the first root that has it."""
    if extra is None:
        extra = [Path(p) for p in os.environ.get("PRUNEBOARD_DATA_ROOTS", "").split(os.pathsep)
                 if p.strip()]
    own = data_dir / "datasets"
    own.mkdir(parents=True, exist_ok=True)
    roots = [own]
    for root in extra:
        root = root.expanduser().resolve()
        if not root.is_dir():
            # Checked here: a worker would only report no datasets for it, with no error shown.
            raise UsageError(f"--data-root {root}: no such folder")
        if root not in roots:
            roots.append(root)
    return roots


def _raise_stop(signum, frame) -> None:
    raise _Stop


def _check_port_free(host: str, port: int) -> None:
    # Checked before anything starts: a clear message beats a worker left running by a server
    # that could not bind.
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} on {host} is in use (another `pruneboard up`?); "
                                 f"choose one with --port") from None
            raise UsageError(f"cannot serve on {host}:{port}: {error.strerror}") from None


def migrate(url: str) -> None:
    """`alembic upgrade head` on this database, from the alembic/ folder beside the sources."""
    from alembic import command
    from alembic.config import Config

    root = _project_root()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "alembic"))
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["configure_logger"] = False  # leave logging to uvicorn
    command.upgrade(config, "head")


def _project_root() -> Path:
    # A source checkout or editable install has alembic/ beside cli/; an installed wheel does
    # not, so the working folder (the checkout, or /app in the image) is the fallback.
    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        if (root / "alembic" / "env.py").is_file() and (root / "alembic.ini").is_file():
            return root
    raise UsageError("cannot find the alembic/ migrations: run `pruneboard up` from the "
                     "Pruneboard source folder")


def ensure_admin_token(url: str, path: Path) -> str:
    """The admin token from ``path``, or a new one saved there (mode 0600) on first start.

    A token file that no longer matches the database (the database was deleted) is replaced;
    so is the "admin" token row when its file is lost, since nobody can read that token again.
    """
    from sqlalchemy import delete

    from backend.auth import create_token, verify_token
    from backend.db import session_scope
    from backend.models import ApiToken

    if path.is_file():
        token = path.read_text().strip()
        with session_scope(url) as session:
            if verify_token(session, token) is not None:
                return token
    with session_scope(url) as session:
        session.execute(delete(ApiToken).where(ApiToken.name == ADMIN_TOKEN_NAME))
        token = create_token(session, name=ADMIN_TOKEN_NAME, scope="admin")
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(token + "\n")
    os.chmod(partial, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    os.replace(partial, path)
    return token


class LocalWorker:
    """`pruneboard worker --cpu` as a child process with the same environment."""

    def __init__(self):
        command = [sys.executable, "-m", "cli.main", "worker", "--cpu"]
        # Its own session: a Ctrl-C in the terminal reaches it once, as our SIGTERM, not also
        # directly (a second signal is Celery's cold shutdown, which drops the running job).
        self.process = subprocess.Popen(command, env=os.environ.copy(), start_new_session=True,
                                        preexec_fn=_die_with_parent)
        self.stopping = threading.Event()
        threading.Thread(target=self._report_exit, daemon=True).start()

    def _report_exit(self) -> None:
        status = self.process.wait()
        if not self.stopping.is_set():
            print(f"pruneboard: the local worker exited with status {status}; queued jobs "
                  f"wait until a worker runs (see its messages above)", file=sys.stderr,
                  flush=True)

    def stop(self) -> None:
        self.stopping.set()
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=WORKER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # Its job is requeued from its checkpoint once the job's heartbeat is stale.
            self.process.kill()
            self.process.wait()


def _die_with_parent() -> None:
    # Linux delivers SIGTERM to the worker if `up` itself dies (even by SIGKILL), so no
    # orphaned worker keeps consuming the queue after the API is gone.
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
