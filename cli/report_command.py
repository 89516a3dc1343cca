"""`pruneboard report ID -o report.html`: one job as a single self-contained HTML file.

The file carries plotly.js inline (from the installed plotly package), the job's series as the
API sends them (downsampled, extremes kept), its config, summary, status history and log tail,
so it opens from a mail attachment or a laptop with no server and no network.
"""

from __future__ import annotations

import html
import json
import sys
from datetime import datetime
from pathlib import Path

from cli.client import add_connection_flags, client_from_args
from cli.errors import UsageError

LAYER_PREFIX = "layer_group_sparsity/"
STEP_AXIS = "step (minibatches)"
# The job page's charts (frontend/js/series.js), as (title, [(key, label)], y title, percent,
# second-axis key and title).
CHARTS = [
    ("Train and test loss", [("train_loss", "train loss"), ("test_loss", "test loss")],
     "cross-entropy loss (nats)", False, None),
    ("Test accuracy", [("test_accuracy", "top-1"), ("test_top5", "top-5")],
     "test accuracy (%)", True, None),
    ("Weight and group sparsity", [("weight_sparsity", "weight sparsity"),
                                   ("group_sparsity", "group sparsity")],
     "sparsity (% zero)", True, None),
    ("Remaining FLOPs and params", [("remaining_flops", "remaining FLOPs"),
                                    ("remaining_params", "remaining params")],
     "remaining (% of dense)", True, None),
    ("Threshold λₙ and learning rate γ", [("threshold", "threshold λₙ"),
                                          ("lr", "learning rate γ")],
     "λₙ (weight magnitude)", False, ("lr", "γ (lr per step)")),
]
SUMMARY = [("test accuracy", "test_accuracy", "{:.2%}"), ("top-5 accuracy", "test_top5", "{:.2%}"),
           ("group sparsity", "group_sparsity", "{:.1%}"),
           ("weight sparsity", "weight_sparsity", "{:.1%}"),
           ("FLOPs reduction", "flops_reduction", "{:.1%}"),
           ("remaining params", "remaining_params", "{:.1%}"),
           ("dense params", "dense_params", "{:,}"), ("dense FLOPs", "dense_flops", "{:,}"),
           ("run time (s)", "elapsed_s", "{:.1f}")]
LOG_LINES = 200


def register(commands) -> None:
    parser = commands.add_parser("report", help="write one job as a self-contained HTML file",
                                 description=__doc__.splitlines()[0])
    parser.add_argument("job_id", type=int, metavar="ID")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="where to write it (default job-ID-report.html)")
    parser.add_argument("--max-points", type=int, default=1000, metavar="N",
                        help="points per series, downsampled by the API keeping extremes "
                             "(default 1000; 0 = every point, a larger file)")
    add_connection_flags(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    if args.max_points < 0:
        raise UsageError("--max-points must be 0 (all) or more")
    output = args.output or Path(f"job-{args.job_id}-report.html")
    with client_from_args(args) as client:
        job = client.get(f"/jobs/{args.job_id}")
        metrics = client.get(f"/jobs/{args.job_id}/metrics", max_points=args.max_points)
        logs = client.get(f"/jobs/{args.job_id}/logs", limit=10_000)["items"][-LOG_LINES:]
    page = render_report(job, metrics["series"], logs, plotly_js())
    try:
        output.write_text(page, encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write {output}: {error.strerror}") from None
    print(f"job {job['id']} report written to {output} ({len(page) / 1e6:.1f} MB)",
          file=sys.stderr)
    return 0


def plotly_js() -> str:
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise UsageError(f"plotly.min.js is missing from the plotly package ({path}); "
                         f"reinstall plotly")
    return path.read_text(encoding="utf-8")


def figures(series: dict[str, dict]) -> list[dict]:
    """Plotly figures (plain dicts) for the series present; charts without data are left out."""
    result = []
    for title, keys, y_title, percent, second in CHARTS:
        traces = []
        for key, label in keys:
            data = series.get(key)
            if data and data["steps"]:
                on_second = second is not None and key == second[0]
                traces.append({"type": "scatter", "mode": "lines", "name": label,
                               "x": data["steps"], "y": data["values"],
                               "yaxis": "y2" if on_second else "y"})
        if not traces:
            continue
        layout = {"title": {"text": title, "x": 0}, "height": 320,
                  "margin": {"l": 72, "r": 72 if second else 24, "t": 60, "b": 48},
                  "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0.3},
                  "xaxis": {"title": {"text": STEP_AXIS}},
                  "yaxis": {"title": {"text": y_title}}}
        if percent:
            layout["yaxis"]["tickformat"] = ".0%"
        if second:
            layout["yaxis2"] = {"title": {"text": second[1]}, "overlaying": "y", "side": "right",
                                "showgrid": False, "rangemode": "tozero"}
            layout["yaxis"]["rangemode"] = "tozero"
        result.append({"data": traces, "layout": layout})
    heat = heatmap_figure(series)
    if heat:
        result.append(heat)
    return result


def heatmap_figure(series: dict[str, dict], columns: int = 200) -> dict | None:
    """Layers × steps, each cell the layer's latest value at or before the column's step."""
    keys = sorted((k for k in series if k.startswith(LAYER_PREFIX) and series[k]["steps"]),
                  key=_natural)
    if not keys:
        return None
    longest = max((series[k]["steps"] for k in keys), key=len)
    stride = max(1, -(-len(longest) // columns))
    steps = longest[::stride] if (len(longest) - 1) % stride == 0 else \
        longest[::stride] + [longest[-1]]
    rows = []
    for key in keys:
        own_steps, values = series[key]["steps"], series[key]["values"]
        row, j = [], -1
        for step in steps:
            while j + 1 < len(own_steps) and own_steps[j + 1] <= step:
                j += 1
            row.append(values[j] if j >= 0 else None)
        rows.append(row)
    layers = [k[len(LAYER_PREFIX):] for k in keys]
    return {"data": [{"type": "heatmap", "x": steps, "y": layers, "z": rows, "zmin": 0, "zmax": 1,
                      "colorscale": "Viridis",
                      "colorbar": {"title": {"text": "group sparsity (%)"}, "tickformat": ".0%"}}],
            "layout": {"title": {"text": "Group sparsity per layer over steps", "x": 0},
                       "height": max(320, 80 + 18 * len(layers)),
                       "xaxis": {"title": {"text": STEP_AXIS}},
                       "yaxis": {"title": {"text": "layer"}, "autorange": "reversed",
                                 "automargin": True}}}


def _natural(key: str) -> list:
    # features.10 after features.9, as the layers run.
    return [int(part) if part.isdigit() else part for part in key.replace(".", " . ").split()]


def render_report(job: dict, series: dict[str, dict], logs: list[dict], plotly: str) -> str:
    values = {**(job.get("latest") or {}), **(job.get("summary") or {})}
    if "flops_reduction" not in values and isinstance(values.get("remaining_flops"), float):
        values["flops_reduction"] = 1 - values["remaining_flops"]
    title = f"Job {job['id']}" + (f" — {job['name']}" if job.get("name") else "")
    summary = "".join(f"<tr><th>{label}</th><td>{_fmt(values.get(key), fmt)}</td></tr>"
                      for label, key, fmt in SUMMARY if values.get(key) is not None)
    config = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_plain(v))}</td></tr>"
                     for k, v in job["config"].items())
    history = "".join(f"<li><b>{html.escape(c['status'])}</b> {html.escape(c['at'])}"
                      f"{' — ' + html.escape(c['note']) if c.get('note') else ''}</li>"
                      for c in job.get("history") or [])
    log = "\n".join(f"{entry['created_at']} {entry['level']:5} {entry['message']}"
                    for entry in logs)
    charts = figures(series)
    figures_json = json.dumps(charts, allow_nan=False).replace("</", "<\\/")
    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · Pruneboard report</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; color: #1d2330; margin: 0 auto; max-width: 1200px;
  padding: 1rem; }}
table {{ border-collapse: collapse; }} th, td {{ text-align: left; padding: .2rem .8rem .2rem 0; }}
th {{ color: #667085; font-weight: 600; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 520px), 1fr));
  gap: .5rem; }}
.chart {{ border: 1px solid #d9dee7; border-radius: 6px; }}
pre {{ background: #10141c; color: #d6deeb; padding: .6rem; overflow: auto; max-height: 24rem;
  white-space: pre-wrap; font-size: .8rem; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(job['model'])} on {html.escape(job['dataset'])} with
{html.escape(job['method'])} · status <b>{html.escape(job['status'])}</b> · step {job['step']}
of {job.get('total_steps') or '?'} · owner {html.escape(job['owner'])} · report written
{generated}</p>
{f'<p><b>Error:</b> {html.escape(job["error"])}</p>' if job.get('error') else ''}
<h2>Summary</h2><table>{summary or '<tr><td>No results yet.</td></tr>'}</table>
<h2>Charts</h2>
{'' if charts else '<p>This job has no metrics yet.</p>'}
<div class="grid" id="charts"></div>
<h2>Config</h2><table>{config}</table>
<h2>Status history</h2><ol>{history or '<li>none recorded</li>'}</ol>
<h2>Log (last {LOG_LINES} lines)</h2><pre>{html.escape(log) or 'no log lines'}</pre>
<script>{plotly}</script>
<script>
const figures = {figures_json};
const grid = document.getElementById("charts");
// Every cell first, then the plots: a plot takes its cell's width when drawn.
const cells = figures.map((figure) => {{
  const el = grid.appendChild(document.createElement("div"));
  el.className = "chart";
  if (figure.data[0].type === "heatmap") el.style.gridColumn = "1 / -1";
  // A fixed box: Plotly's responsive resize fills its container and would collapse an empty one.
  el.style.height = figure.layout.height + "px";
  return el;
}});
figures.forEach((figure, i) =>
  Plotly.newPlot(cells[i], figure.data, figure.layout, {{responsive: true, displaylogo: false}}));
</script>
</body></html>
"""


def _plain(value) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return value if isinstance(value, str) else json.dumps(value)  # null, true: as in the API


def _fmt(value, fmt: str) -> str:
    try:
        return html.escape(fmt.format(value))
    except (TypeError, ValueError):
        return html.escape(str(value))
