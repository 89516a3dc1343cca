"""`pruneboard analyze ID`: run the loss-valley analysis of a finished job on the service and
print its headline numbers (barrier heights, the Hessian projection fractions)."""

from __future__ import annotations

import argparse
import sys
import time

from tqdm import tqdm

from cli.client import add_connection_flags, client_from_args
from cli.errors import UsageError
from pruneboard.status import JobStatus

KINDS = ("linear", "bezier", "hessian", "plane")
_OPTIONS = (("points", "points on the linear path (default 41)"),
            ("hessian_k", "top Hessian eigenpairs (default 10)"),
            ("plane_grid", "grid points per axis of the loss plane (default 21)"),
            ("eval_samples", "training samples per train-loss evaluation (default 5000)"))


def register(commands) -> None:
    parser = commands.add_parser(
        "analyze", help="loss-valley analysis of a finished job against its SGD reference",
        description="Is the pruned solution in the same valley as SGD's? Runs the linear (and "
        "optionally Bézier) path, the Hessian projection and the loss plane on a worker.")
    parser.add_argument("job_id", type=int, metavar="ID")
    parser.add_argument("--reference", type=int, metavar="JOB", help="a finished job to compare "
                        "with (default: the job's own SGD twin)")
    parser.add_argument("--kind", action="append", choices=KINDS, dest="kinds",
                        help="an analysis to run; repeat for more (default: the job's analyses)")
    for name, help_text in _OPTIONS:
        parser.add_argument("--" + name.replace("_", "-"), type=int, help=help_text)
    parser.add_argument("--no-wait", action="store_true", help="queue it and return")
    parser.add_argument("--timeout", type=float, default=3600, metavar="SECONDS",
                        help="give up waiting after this long (default 3600; the analysis "
                        "goes on)")
    add_connection_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    body = {name: getattr(args, name) for name, _ in _OPTIONS if getattr(args, name) is not None}
    if args.kinds:
        body["kinds"] = args.kinds
    if args.reference is not None:
        body["reference_job_id"] = args.reference
    with client_from_args(args) as client:
        analysis = client.post(f"/jobs/{args.job_id}/analyses", body)
        print(f"analysis {analysis['id']} of job {args.job_id} queued", file=sys.stderr)
        if args.no_wait:
            return 0
        analysis = _wait(client, args.job_id, analysis["id"], args.timeout)
    if analysis["status"] != JobStatus.SUCCEEDED:
        raise UsageError(f"analysis {analysis['id']} {analysis['status']}: {analysis['error']}")
    print(format_result(analysis["result"]))
    return 0


def _wait(client, job_id: int, analysis_id: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    with tqdm(total=100, unit="%", file=sys.stderr, dynamic_ncols=True,
              desc=f"analysis {analysis_id}") as bar:
        while True:
            analysis = next(a for a in client.get(f"/jobs/{job_id}/analyses")
                            if a["id"] == analysis_id)
            bar.update(round(analysis["progress"] * 100) - bar.n)
            bar.set_postfix_str(analysis["message"] or "", refresh=True)
            if analysis["status"] not in (JobStatus.QUEUED, JobStatus.RUNNING):
                return analysis
            if time.monotonic() > deadline:
                raise UsageError(f"analysis {analysis_id} is still {analysis['status']} after "
                                 f"{timeout:g} s (is a worker running?); it goes on: see "
                                 f"GET /jobs/{job_id}/analyses")
            time.sleep(0.5)


def format_result(result: dict) -> str:
    """Headline numbers; a value the engine reports as None (it diverged) shows as –."""
    lines = []
    for kind in ("linear", "bezier"):
        if kind in result:
            path = result[kind]
            above_ends = _number(path.get("barrier_above_ends"))
            lines.append(f"{kind} path: barrier {_number(path['barrier'])} "
                         f"(above ends {above_ends}) "
                         f"(train loss {_number(path['train_loss'][0])} at SGD, "
                         f"{_number(path['train_loss'][-1])} at the pruned weights)")
    if "hessian" in result:
        hessian = result["hessian"]
        eigenvalues = [v for v in hessian["eigenvalues"] if v is not None]
        lines.append(f"Hessian top-{hessian['k']}: ‖P_k Δ‖/‖Δ‖ = {_number(hessian['fraction'])}, "
                     f"random directions {_number(hessian['random_mean'])} (largest eigenvalue "
                     f"{_number(max(eigenvalues) if eigenvalues else None, '.4g')})")
    if "plane" in result:
        plane = result["plane"]
        lines.append(f"loss plane: {len(plane['x'])}×{len(plane['y'])} grid")
    return "\n".join(lines)


def _number(value, spec: str = ".4f") -> str:
    return "–" if value is None else format(value, spec)
