// One job, live: the charts are loaded once (downsampled by the API), then grow from the job's
// event stream, resumed at the cursor of that first read so no point is missed or doubled.

import * as api from "../api.js";
import { heatmap, lineChart, mark } from "../charts.js";
import { heatmapGrid, latestValleyLine, SeriesStore } from "../jobdata.js";
import { describe, JOB_CHARTS, LAYER_PREFIX, VALLEY_PREFIX } from "../series.js";
import { errorBox, h, jobTitle, mayChange, progressBar, statusBadge } from "../ui.js";
import { pathChart } from "../valleycharts.js";
import { forecastView } from "./forecast.js";
import { configTable, historyList, logTail, summaryTiles } from "./jobinfo.js";
import { smallModelSection } from "./smallmodel.js";
import { valleySection } from "./valley.js";

const FINISHED = ["succeeded", "failed", "cancelled"];

export async function mount(root, ctx) {
  const id = Number(ctx.params[0]);
  // Asked for at once, not after the job: on a big job the series are the slow answer.
  const firstSeries = api.jobMetrics(id);
  const firstLogs = api.jobLogs(id).catch(() => ({ items: [] }));
  firstSeries.catch(() => {});  // handled below; the job's own error is the one to show
  let job;
  try {
    job = await api.getJob(id);
  } catch (error) {
    if (error.kind === "auth") throw error;
    root.append(h("h1", {}, `Job ${id}`), errorBox(error));
    return null;
  }
  const store = new SeriesStore();
  const head = h("div", { class: "job-head" });
  const live = h("span", { class: "live-state", id: "job-live" }, "connecting…");
  const feedback = h("div", { class: "feedback", "aria-live": "polite" });
  const tiles = h("div");
  const forecastWrap = h("div", { id: "job-forecast-wrap" });
  let engineAsked = false;  // the start event's forecast replaces the API's: read it once
  const history = h("div");
  const log = logTail();
  const grid = h("div", { class: "charts" });
  const heatEl = h("div", { id: "chart-heatmap", class: "wide" });
  const smallModel = h("div");
  // Any submit or admin token may run an analysis: it reads the job, it changes nothing.
  const valley = valleySection(() => job, { canRun: ["submit", "admin"].includes(ctx.identity?.scope) });

  root.append(head, feedback, tiles, forecastWrap, grid, smallModel, valley.el,
    h("section", { class: "details" },
      h("div", { class: "card" }, h("h2", {}, "Log"), log.el),
      h("div", { class: "card" }, h("h2", {}, "Status history"), history),
      h("div", { class: "card" }, h("h2", {}, "Config"), h("div", { id: "config-wrap" }),
        h("h2", {}, "Downloads"),
        h("a", { href: api.metricsCsvUrl(id), download: `job-${id}-metrics.csv`, id: "download-csv" },
          "Metrics (CSV, every point)"))));

  const charts = JOB_CHARTS.filter((spec) => !spec.when || spec.when(job.config)).map((spec) => {
    const el = grid.appendChild(h("div", { id: `chart-${spec.id}` }));
    const first = describe(spec.keys[0]);
    const second = spec.secondAxis ? describe(spec.secondAxis) : null;
    return { spec, chart: lineChart(el, { title: spec.title, yTitle: first.axis, yPercent: first.percent,
      y2Title: second && second.axis, y2Percent: second && second.percent, fromZero: spec.fromZero }) };
  });
  const heat = heatmap(grid.appendChild(heatEl),
    { title: "Group sparsity per layer over steps" });
  const valleyLine = job.config.valley_interval > 0
    ? pathChart(grid.appendChild(h("div", { id: "chart-valley-live" })), { title: "Live valley check: latest line SGD twin → run" })
    : null;

  function showJob() {
    head.replaceChildren(
      h("div", { class: "page-head" }, h("h1", { id: "job-title" }, jobTitle(job)), statusBadge(job.status), live),
      h("p", { class: "muted" }, `${job.model} on ${job.dataset} with ${job.method}`),
      progressBar(job), ...[actions(), job.error ? h("div", { class: "notice error", id: "job-error" }, job.error)
        : null].filter(Boolean));
    tiles.replaceChildren(summaryTiles(job));
  }

  // The pruning forecast: the API's from the architecture until the run's start event brings the
  // engine's from the real weights.
  function showForecast() {
    const view = forecastView(job.forecast, { id: "job-forecast" });
    forecastWrap.replaceChildren(...(view ? [h("section", { class: "card forecast-card" },
      h("h2", {}, "Pruning forecast"), view)] : []));
  }

  // Status history and config change only with the status (attempt, worker), not with progress.
  function showDetails() {
    history.replaceChildren(historyList(job));
    smallModel.replaceChildren(smallModelSection(job, ctx.identity));
    root.querySelector("#config-wrap").replaceChildren(configTable(job));
  }

  function actions() {
    if (!mayChange(ctx.identity, job)) return null;
    const act = (label, call, after) => h("button", { type: "button", id: `${label.toLowerCase()}-job`,
      onclick: async () => {
        try {
          const result = await call(id);
          after(result);
        } catch (error) {
          feedback.replaceChildren(errorBox(error, `${label}: `));
        }
      } }, label);
    const refresh = (result) => { job = { ...job, ...result }; showJob(); showDetails(); showForecast(); reopen(); };
    return h("div", { class: "actions" },
      FINISHED.includes(job.status) ? null : act("Cancel", api.cancelJob, refresh),
      ["failed", "cancelled"].includes(job.status) ? act("Retry", api.retryJob, refresh) : null,
      FINISHED.includes(job.status) ? act("Delete", async (jobId) => confirm(`Delete job ${jobId} and all its metrics?`)
        && (await api.deleteJob(jobId), true), (deleted) => deleted && ctx.navigate("/jobs")) : null);
  }

  function emptyText(key) {
    if (job.status === "queued") return "No metrics yet: the job is queued and waits for a worker.";
    if (!FINISHED.includes(job.status)) {
      return key === "test_accuracy" || key === "test_loss"
        ? "No test metrics yet: they are measured at the end of each epoch."
        : `No metrics yet: the first points arrive after ${job.config.log_interval} steps.`;
    }
    return `This job recorded no ${describe(key).label}.`;
  }

  function draw(changed) {
    const renders = [];
    for (const { spec, chart } of charts) {
      if (changed && !spec.keys.some((k) => changed.has(k))) continue;
      const lines = spec.keys.filter((k) => store.has(k)).map((k) => ({ key: k, name: describe(k).label,
        ...store.get(k), percent: describe(k).percent, secondAxis: k === spec.secondAxis }));
      renders.push(lines.length ? chart.update(lines) : chart.message(emptyText(spec.keys[0])));
    }
    if ((!changed || [...changed].some((k) => k.startsWith(LAYER_PREFIX)))) {
      const grid = heatmapGrid(store);
      renders.push(grid ? heat.update(grid) : heat.message(FINISHED.includes(job.status)
        ? "This job recorded no per-layer group sparsity." : emptyText("layer")));
    }
    if (valleyLine && (!changed || [...changed].some((k) => k.startsWith(VALLEY_PREFIX)))) {
      const line = latestValleyLine(store);
      renders.push(line ? valleyLine.update([{ name: `step ${line.step}`, ...line }])
        : valleyLine.message(`The first check comes after ${job.config.valley_interval} epoch(s).`));
    }
    return Promise.all(renders);
  }

  let stop = () => {};
  let cursor = null;
  async function loadSeries() {
    const metrics = await firstSeries;
    store.load(metrics.series);
    cursor = metrics.cursor;
    await draw(null);
    mark("job-rendered");
  }

  // (Re)open the stream after a retry or cancel, when a finished job may run again.
  function reopen() {
    stop();
    if (FINISHED.includes(job.status) && cursor) return setLive("finished");
    stop = api.followJob(id, cursor, {
      onState: (state) => setLive(state === "closed" ? "live updates stopped: reload the page" : state),
      metrics: ({ points }) => {
        const changed = store.add(points);
        if (changed.size) draw(changed);
      },
      log: (entry) => log.append([entry]),
      status: async (update) => {
        const moved = update.status !== job.status;
        // Streamed statuses carry no forecast: keep the one read with the job.
        job = { ...job, ...update, history: job.history, forecast: update.forecast ?? job.forecast,
          warnings: update.warnings ?? job.warnings };
        const engineDue = !engineAsked && job.status === "running" && job.step > 0
          && job.forecast?.basis !== "engine";
        if (engineDue) engineAsked = true;
        if (moved || engineDue) job = await api.getJob(id).catch(() => job);  // fresh history, forecast
        showJob();
        if (moved || engineDue) showForecast();
        if (moved) showDetails();
        if (moved && job.status === "succeeded") valley.refresh();  // its analysis is queued now
      },
      // A stream also ends when its token or session is revoked or expires: say so.
      end: ({ reason }) => { stop(); setLive(reason?.includes("token") ? `live updates stopped: ${reason}` : "finished"); },
    });
  }

  function setLive(state) {
    live.textContent = state === "live" ? "● live" : state;
    live.dataset.state = state;
  }

  showJob();
  showDetails();
  showForecast();
  const [, logs] = await Promise.all([
    loadSeries().catch((error) => {
      if (error.kind === "auth") throw error;
      feedback.append(errorBox(error, "Could not load the metrics: "));
    }),
    firstLogs,
  ]);
  log.append(logs.items);
  reopen();
  return () => { stop(); valley.close(); };
}
