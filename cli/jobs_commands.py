"""Job commands over the HTTP API: submit, jobs, cancel, retry, metrics.

Thin on purpose: the API validates, stores and enqueues; these only shape requests and print.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from cli.client import add_connection_flags, client_from_args
from cli.errors import UsageError
from cli.train_command import _read_config_file
from cli.watch_command import follow
from pruneboard.status import JobStatus


def register(commands) -> None:
    submit = commands.add_parser("submit", help="queue a job on the Pruneboard service",
                                 description="Queue a job from a YAML or JSON file of config "
                                 "fields (the `pruneboard train` flags, underscored).")
    submit.add_argument("config", type=Path, metavar="CONFIG", help="job.yaml or job.json")
    submit.add_argument("--name", help="a label for lists (overrides the file's name)")
    submit.add_argument("--tag", action="append", dest="tags", metavar="TAG",
                        help="a tag to filter by; repeat for more (replaces the file's tags)")
    submit.add_argument("--watch", action="store_true", help="then follow it like `watch`")
    add_connection_flags(submit)
    submit.set_defaults(run=run_submit)

    jobs = commands.add_parser("jobs", help="list jobs on the service")
    jobs.add_argument("--status", choices=[status.value for status in JobStatus])
    jobs.add_argument("--owner", help="only jobs submitted with this token name")
    jobs.add_argument("--tag", help="only jobs with this tag")
    jobs.add_argument("--search", help="text in the name, model, dataset or method")
    jobs.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    add_connection_flags(jobs)
    jobs.set_defaults(run=run_jobs)

    for action, help_text in (("cancel", "stop a queued or running job"),
                              ("retry", "queue a failed or cancelled job again")):
        parser = commands.add_parser(action, help=help_text)
        parser.add_argument("job_id", type=int, metavar="ID")
        add_connection_flags(parser)
        parser.set_defaults(run=run_cancel if action == "cancel" else run_retry)

    metrics = commands.add_parser("metrics", help="a job's metrics: latest values, or all as CSV")
    metrics.add_argument("job_id", type=int, metavar="ID")
    metrics.add_argument("--csv", action="store_true",
                         help="every point as CSV (key,step,value,wall_time)")
    metrics.add_argument("-o", "--output", type=Path, metavar="FILE",
                         help="write the CSV here instead of to stdout")
    add_connection_flags(metrics)
    metrics.set_defaults(run=run_metrics)


def run_submit(args: argparse.Namespace) -> int:
    body = _read_config_file(args.config)
    if args.name is not None:
        body["name"] = args.name
    if args.tags:
        body["tags"] = args.tags
    with client_from_args(args) as client:
        job = client.create("/jobs", body)  # retried safely: the same Idempotency-Key
        # The id alone on stdout, so `ID=$(pruneboard submit job.yaml)` works.
        print(job["id"], flush=True)
        for warning in job.get("warnings") or ():
            print(f"warning: {warning}", file=sys.stderr, flush=True)
        if args.watch:
            return follow(client, job["id"])
    print(f"queued job {job['id']} ({job['method']} {job['model']} on {job['dataset']}); "
          f"follow it with `pruneboard watch {job['id']}`", file=sys.stderr)
    return 0


def run_jobs(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 500:
        raise UsageError("--limit must be in [1, 500]")
    with client_from_args(args) as client:
        page = client.get("/jobs", status=args.status, owner=args.owner, tag=args.tag,
                          q=args.search, limit=args.limit, offset=0)
    rows = [_job_row(job) for job in page["items"]]
    if not rows:
        print("no jobs")
        return 0
    print(format_table(("id", "status", "progress", "model", "dataset", "method", "test acc",
                        "group sparsity", "FLOPs cut", "owner"), rows))
    if page["total"] > len(rows):
        print(f"({len(rows)} of {page['total']} jobs; raise --limit or filter to see more)")
    return 0


def _job_row(job: dict) -> tuple[str, ...]:
    latest = job.get("latest") or {}
    summary = job.get("summary") or {}
    accuracy = latest.get("test_accuracy", summary.get("test_accuracy"))
    sparsity = latest.get("group_sparsity", summary.get("group_sparsity"))
    remaining = latest.get("remaining_flops")
    flops_cut = 1 - remaining if _is_number(remaining) else summary.get("flops_reduction")
    return (str(job["id"]), job["status"], _percent(job.get("progress"), 0), job["model"],
            job["dataset"], job["method"], _percent(accuracy, 2), _percent(sparsity, 1),
            _percent(flops_cut, 1), job.get("owner") or "")


def run_cancel(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        job = client.post(f"/jobs/{args.job_id}/cancel")
    if job["status"] == JobStatus.CANCELLED:
        print(f"job {job['id']} cancelled")
    else:
        print(f"job {job['id']}: cancel requested; its worker stops it at the next step")
    return 0


def run_retry(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        job = client.post(f"/jobs/{args.job_id}/retry")
    print(f"job {job['id']} {job['status']} again")
    return 0


def run_metrics(args: argparse.Namespace) -> int:
    with client_from_args(args) as client:
        if args.csv:
            return _write_csv(client, args)
        if args.output:
            raise UsageError("-o/--output writes CSV: add --csv")
        # MinMaxLTTB keeps each series' last point, so two points per series hold the latest.
        data = client.get(f"/jobs/{args.job_id}/metrics", max_points=2)
    rows = []
    for key in data["keys"]:
        series = data["series"].get(key) or {"steps": [], "values": []}
        if series["steps"]:
            value = series["values"][-1]
            rows.append((key, str(series["steps"][-1]),
                         "nan" if value is None else f"{value:.6g}"))
    if not rows:
        print(f"job {args.job_id} has no metrics yet")
        return 0
    print(format_table(("series", "step", "latest"), rows))
    return 0


def _write_csv(client, args: argparse.Namespace) -> int:
    chunks = client.iter_text(f"/jobs/{args.job_id}/metrics.csv")
    if args.output is None:
        for chunk in chunks:
            sys.stdout.write(chunk)
        return 0
    first = next(chunks, "")  # a 404 or 401 surfaces here, before the file is created
    lines = 0
    try:
        with args.output.open("w", newline="") as out:
            for chunk in itertools.chain([first], chunks):
                out.write(chunk)
                lines += chunk.count("\n")
    except OSError as error:
        raise UsageError(f"cannot write {args.output}: {error.strerror}") from None
    print(f"{max(lines - 1, 0)} points written to {args.output}", file=sys.stderr)
    return 0


def format_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _percent(value, digits: int) -> str:
    return f"{value:.{digits}%}" if _is_number(value) else "-"
