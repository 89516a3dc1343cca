"""`pruneboard watch ID`: follow one job live from the API's event stream.

A tqdm bar fed by the stream's metrics and status events, the job's log lines above it, then the
final status and summary. Exit status 0 when the job succeeded, 1 when it failed or was
cancelled, so scripts can `pruneboard submit job.yaml --watch && deploy`.
"""

from __future__ import annotations

import json
import sys

from tqdm import tqdm

from cli.client import ApiClient, add_connection_flags, client_from_args
from cli.progress import ProgressPrinter
from pruneboard.status import FINISHED, JobStatus


def register(commands) -> None:
    parser = commands.add_parser("watch", help="follow a job live until it finishes",
                                 description=__doc__.splitlines()[0])
    parser.add_argument("job_id", type=int, metavar="ID")
    add_connection_flags(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    with client_from_args(args) as client:
        return follow(client, args.job_id)


def follow(client: ApiClient, job_id: int) -> int:
    job = client.get(f"/jobs/{job_id}")  # a 404 becomes "job N not found" before any stream
    if job["status"] not in FINISHED:
        bar = _JobBar(job)
        try:
            for event in client.events(f"/jobs/{job_id}/events", until="end"):
                bar.on_event(event.event, json.loads(event.data))
        finally:
            bar.close()
        job = client.get(f"/jobs/{job_id}")
    print(final_report(job))
    return 0 if job["status"] == JobStatus.SUCCEEDED else 1


class _JobBar:
    def __init__(self, job: dict):
        self.job_id = job["id"]
        self.bar = tqdm(total=job.get("total_steps"), initial=job.get("step") or 0,
                        unit="step", dynamic_ncols=True, file=sys.stderr,
                        desc=self._description(job))
        self.postfix: dict[str, str] = {}
        self._show_latest(job.get("latest") or {})

    def on_event(self, kind: str, data: dict) -> None:
        if kind == "status":
            if data.get("total_steps") and self.bar.total != data["total_steps"]:
                self.bar.total = data["total_steps"]
            self.bar.set_description_str(self._description(data), refresh=False)
            self._move_to(data.get("step") or 0)
            self._show_latest(data.get("latest") or {})
        elif kind == "metrics":
            points = data.get("points") or []
            if points:
                self._move_to(max(p["step"] for p in points))
                self._show_latest({p["key"]: p["value"] for p in points})
        elif kind == "log":
            self.bar.write(f"[{data.get('level', 'info')}] {data.get('message', '')}",
                           file=sys.stderr)

    def close(self) -> None:
        self.bar.close()

    def _description(self, job: dict) -> str:
        return f"job {self.job_id} {job.get('status', '')}"

    def _move_to(self, step: int) -> None:
        # A retried job starts again from its checkpoint, so the bar may go back too.
        self.bar.n = step
        self.bar.refresh()

    def _show_latest(self, latest: dict) -> None:
        shown = {"train_loss": ("loss", "{:.3f}"), "test_accuracy": ("test_acc", "{:.2%}"),
                 "group_sparsity": ("groups_pruned", "{:.0%}")}
        for key, (label, fmt) in shown.items():
            if isinstance(latest.get(key), int | float):
                self.postfix[label] = fmt.format(latest[key])
        if isinstance(latest.get("remaining_flops"), int | float):
            self.postfix["flops_cut"] = f"{1 - latest['remaining_flops']:.0%}"
        self.bar.set_postfix(self.postfix)


def final_report(job: dict) -> str:
    head = f"job {job['id']} {job['status']}"
    if job.get("error"):
        head += f": {job['error']}"
    summary = job.get("summary")
    if not summary:
        return head
    return f"{head}\n{summary_table(summary)}"


def summary_table(summary: dict) -> str:
    """The same table `pruneboard train` prints, or every scalar when the summary comes from an
    engine version with other fields."""
    try:
        return ProgressPrinter.summary_table(summary)
    except (KeyError, TypeError, ValueError):
        rows = [(k, f"{v:.4g}" if isinstance(v, float) else str(v))
                for k, v in summary.items() if isinstance(v, str | int | float)]
        width = max((len(k) for k, _ in rows), default=0)
        return "\n".join(f"{k.ljust(width)} | {v}" for k, v in rows)
