// The non-chart parts of a job page: summary tiles, config, status history and the log tail.

import { duration, flopsReduction, h, num, pct, when } from "../ui.js";

const LOG_LINES = 300;  // the tail a browser keeps; the full log is GET /jobs/{id}/logs

export function summaryTiles(job) {
  const v = { ...(job.latest || {}), ...(job.summary || {}) };
  const tile = (label, value, id) => h("div", { class: "tile", id }, h("span", { class: "tile-label" }, label),
    h("span", { class: "tile-value" }, value));
  const elapsed = job.started_at
    ? ((job.finished_at ? Date.parse(job.finished_at) : Date.now()) - Date.parse(job.started_at)) / 1000 : NaN;
  return h("div", { class: "tiles", id: "summary" },
    tile("test accuracy", pct(v.test_accuracy, 2), "tile-accuracy"),
    tile("group sparsity", pct(v.group_sparsity), "tile-group-sparsity"),
    tile("weight sparsity", pct(v.weight_sparsity), "tile-weight-sparsity"),
    tile("FLOPs reduction", pct(flopsReduction(v)), "tile-flops"),
    tile("remaining params", pct(v.remaining_params), "tile-params"),
    tile("threshold λₙ", num(v.threshold), "tile-threshold"),
    tile("epoch", v.epoch !== undefined ? `${v.epoch + 1} of ${job.config.epochs}` : "–", "tile-epoch"),
    tile("run time", duration(elapsed), "tile-time"));
}

export function configTable(job) {
  return h("table", { class: "kv", id: "config" },
    h("tbody", {}, Object.entries(job.config).map(([k, value]) =>
      h("tr", {}, h("th", {}, k), h("td", {}, Array.isArray(value) ? value.join(", ") : String(value))))),
    h("tbody", {}, [["owner", job.owner], ["tags", job.tags.join(", ") || "–"], ["attempt", job.attempt],
      ["workers lost", job.worker_losses ?? 0],
      ["worker", job.worker_id || "–"], ["submitted", when(job.created_at)]].map(([k, value]) =>
      h("tr", {}, h("th", {}, k), h("td", {}, String(value))))));
}

export function historyList(job) {
  const items = (job.history || []).map((c) => h("li", {},
    h("span", { class: `badge status-${c.status}` }, c.status), " ", when(c.at), c.note ? ` — ${c.note}` : ""));
  return h("ol", { class: "history", id: "history" }, items.length ? items : h("li", {}, "No changes recorded."));
}

/** A <pre> that keeps the last lines and stays scrolled to the bottom unless the user scrolled up. */
export function logTail() {
  const pre = h("pre", { class: "log", id: "log", tabindex: 0 });
  const lines = [];
  let lastId = 0;  // the first read and the stream may overlap by a few lines
  return {
    el: pre,
    append(entries) {
      for (const e of entries) {
        if (e.id <= lastId) continue;
        lastId = e.id;
        lines.push(`${new Date(e.created_at).toLocaleTimeString()} ${e.level.padEnd(5)} ${e.message}`);
      }
      lines.splice(0, Math.max(0, lines.length - LOG_LINES));
      const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
      pre.textContent = lines.length ? lines.join("\n") : "No log lines yet.";
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    },
  };
}
