// The "Loss valley" section of a job page: the job's analyses with their status and progress, a
// form to run one (against the job's SGD twin or another finished job), and the charts of the
// newest finished one. Polls while an analysis is queued or running.

import * as api from "../api.js";
import { pathChart, planeChart, spectrumChart } from "../valleycharts.js";
import { errorBox, h, num, statusBadge, when } from "../ui.js";

const KINDS = [["linear", "linear path"], ["bezier", "Bézier curve"], ["hessian", "Hessian projection"], ["plane", "loss plane"]];
const POLL_MS = 1500;

// After a twin job succeeds its analysis is queued in the same transaction; polls that still
// find none (a page opened on an older job, a row being created) stop after this many tries.
const EMPTY_POLLS = 5;

/** `currentJob()` gives the job as the page knows it now (its status changes while it is open). */
export function valleySection(currentJob, { canRun }) {
  const job = currentJob();
  const list = h("div", { id: "analyses" });
  const feedback = h("div", { class: "feedback", "aria-live": "polite" });
  const charts = h("div", { class: "charts" });
  const el = h("section", { class: "card valley", id: "valley" },
    h("h2", {}, "Loss valley: is the pruned solution in SGD's valley?"),
    h("p", { class: "muted" }, "The train loss on the path from the SGD weights (t = 0) to the pruned weights (t = 1), "
      + "the share of their difference inside the Hessian's top eigenspace (small = directional pruning), and the loss "
      + "over the plane through w_init, w_SGD and w_pruned."),
    canRun ? runForm(job, feedback, () => refresh()) : null, feedback, list, charts);
  const drawn = { id: null };
  let timer = null;
  let closed = false;
  let failures = 0;
  let emptyPolls = 0;

  const later = (ms) => { if (!closed) timer = setTimeout(refresh, ms); };

  async function refresh() {
    clearTimeout(timer);
    const now = currentJob();
    let analyses;
    try {
      analyses = await api.listAnalyses(job.id);
    } catch (error) {
      if (closed) return;
      feedback.replaceChildren(errorBox(error, "Could not load the analyses: "));
      failures += 1;
      if (error.kind !== "auth" && error.kind !== "forbidden") later(Math.min(POLL_MS * 2 ** failures, 30_000));
      return;
    }
    if (closed) return;
    if (failures) feedback.replaceChildren();
    failures = 0;
    list.replaceChildren(analysisTable(analyses));
    const done = analyses.filter((a) => a.status === "succeeded").pop();
    if (done && done.id !== drawn.id) {
      drawn.id = done.id;
      drawResult(charts, done);
    } else if (!done && !analyses.length) {
      charts.replaceChildren(h("p", { class: "muted", id: "valley-empty" }, job.config.reference === "sgd"
        ? (now.status === "succeeded" ? "No analysis yet: run one above." : "The analysis starts by itself when the job succeeds.")
        : "This job trained no SGD twin: name a finished SGD job of the same model and dataset as the reference to analyse it."));
    }
    const active = analyses.some((a) => a.status === "queued" || a.status === "running");
    const awaited = !analyses.length && now.status === "succeeded" && job.config.reference === "sgd"
      && (job.config.analyses || []).length && emptyPolls++ < EMPTY_POLLS;
    if (active || awaited) later(POLL_MS);
  }

  refresh();
  return { el, refresh, close: () => { closed = true; clearTimeout(timer); } };
}

function runForm(job, feedback, after) {
  const boxes = KINDS.map(([kind, label]) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "kind", value: kind, checked: (job.config.analyses || []).includes(kind) }), ` ${label}`));
  const reference = h("input", { type: "number", min: 1, id: "analysis-reference", name: "reference_job_id",
    placeholder: job.config.reference === "sgd" ? "its SGD twin" : "job id" });
  const button = h("button", { type: "submit", id: "run-analysis" }, "Run analysis");
  return h("form", { class: "analysis-form", id: "analysis-form", onsubmit: async (event) => {
    event.preventDefault();
    const kinds = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    const body = kinds.length ? { kinds } : {};
    if (reference.value) body.reference_job_id = Number(reference.value);
    button.disabled = true;
    try {
      await api.startAnalysis(job.id, body);
      feedback.replaceChildren();
      after();
    } catch (error) {
      feedback.replaceChildren(errorBox(error, "Analysis not started: "));
    } finally {
      button.disabled = false;
    }
  } }, h("fieldset", {}, h("legend", {}, "Analyses"), ...boxes),
  h("label", {}, "Reference job ", reference), button);
}

// A path's barrier, two ways (pruning.valley.evaluation.barriers): the headline is the height of
// the train loss above the chord between the ends, max_t [L(t) − ((1−t)·L(0) + t·L(1))]; the
// secondary one its height above the higher end, max_t L(t) − max(L(0), L(1)). An analysis stored
// before the chord barrier existed has only the second, under the name `barrier`.
function barrierValues(path) {
  if (!("barrier_above_ends" in path)) return { chord: "–", aboveEnds: num(path.barrier) };
  return { chord: num(path.barrier), aboveEnds: num(path.barrier_above_ends) };
}

function barrierCell(path) {
  const { chord, aboveEnds } = barrierValues(path);
  return [h("span", { title: "height of the train loss above the chord between the ends" }, chord),
    " ", h("span", { class: "muted small", title: "height above the higher end" }, `(above ends ${aboveEnds})`)];
}

function analysisTable(analyses) {
  if (!analyses.length) return h("p", { class: "muted" }, "No analyses of this job.");
  return h("table", { class: "responsive", id: "analysis-table" },
    h("thead", {}, h("tr", {}, ["#", "status", "progress", "reference", "kinds", "linear barrier", "‖P_k Δ‖/‖Δ‖", "random", "started"]
      .map((c) => h("th", {}, c)))),
    h("tbody", {}, analyses.map((a) => {
      const r = a.result || {};
      const cells = [
        ["#", `${a.id}`], ["status", statusBadge(a.status)],
        ["progress", a.status === "failed" ? (a.error || "failed") : `${Math.round(100 * a.progress)} % ${a.status === "running" ? a.message || "" : ""}`],
        ["reference", a.reference_job_id ? `job ${a.reference_job_id}` : "SGD twin"],
        ["kinds", (a.options.kinds || []).join(", ")],
        ["linear barrier", r.linear ? barrierCell(r.linear) : "–"],
        ["‖P_k Δ‖/‖Δ‖", r.hessian ? num(r.hessian.fraction) : "–"],
        ["random", r.hessian ? num(r.hessian.random_mean) : "–"],
        ["started", when(a.started_at)],
      ];
      return h("tr", { dataset: { status: a.status } }, cells.map(([label, v]) => h("td", { dataset: { label } }, v)));
    })));
}

function drawResult(charts, analysis) {
  const r = analysis.result;
  const slot = (id, wide) => charts.appendChild(h("div", { id, class: wide ? "wide" : "" }));
  charts.replaceChildren();
  const paths = [["linear", "linear"], ["bezier", "Bézier"]].filter(([k]) => r[k]).map(([k, name]) => ({ name, ...r[k] }));
  if (paths.length) {
    const barriers = paths.map((p) => {
      const { chord, aboveEnds } = barrierValues(p);
      return `${p.name} barrier ${chord} (above the ends ${aboveEnds})`;
    }).join(" · ");
    pathChart(slot("chart-valley-path"), { title: `Loss and accuracy along the path SGD → pruned (${barriers})` }).update(paths);
  }
  if (r.hessian) spectrumChart(slot("chart-valley-spectrum")).update(r.hessian);
  if (r.plane) {
    planeChart(slot("chart-valley-plane"), { title: "Train loss over the plane of w_init, w_SGD, w_pruned" }).update(r.plane);
    planeChart(slot("chart-valley-plane-error"), { title: "Test error over the same plane", field: "test_error" }).update(r.plane);
  }
}
