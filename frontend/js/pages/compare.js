// Compare up to 20 jobs: any series overlaid across them, and final accuracy against FLOPs
// reduction with the Pareto front. The picked ids live in the URL, so a comparison can be shared.

import * as api from "../api.js";
import { lineChart, paretoScatter } from "../charts.js";
import { describe, SERIES } from "../series.js";
import { errorBox, flopsReduction, h, jobTitle, pct, statusBadge } from "../ui.js";

const MAX_JOBS = 20;

/** Points no other point beats on both axes (higher is better on both), by x ascending. */
export function paretoFront(points) {
  const front = [];
  let best = -Infinity;
  for (const p of [...points].sort((a, b) => b.x - a.x || b.y - a.y)) {
    if (p.y > best) {
      front.push(p);
      best = p.y;
    }
  }
  return front.reverse();
}

export async function mount(root, ctx) {
  const picked = new Set((ctx.query.get("ids") || "").split(",").map(Number).filter(Boolean).slice(0, MAX_JOBS));
  let key = ctx.query.get("key") || "group_sparsity";
  const feedback = h("div", { class: "feedback", "aria-live": "polite" });
  const picker = h("div", { class: "picker", id: "compare-picker" });
  const keySelect = h("select", { id: "compare-key", onchange: () => { key = keySelect.value; sync(); drawOverlay(); } });
  const overlayEl = h("div", { id: "chart-overlay" });
  const scatterEl = h("div", { id: "chart-pareto" });
  const table = h("div", { class: "table-wrap" });
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Compare"),
      h("span", { class: "muted", id: "compare-count" })),
    feedback,
    h("details", { class: "card", open: picked.size === 0 }, h("summary", {}, `Pick jobs (up to ${MAX_JOBS})`), picker),
    h("label", { class: "filter" }, "Series ", keySelect),
    h("div", { class: "charts" }, overlayEl, scatterEl), table);
  const overlay = lineChart(overlayEl, { title: "", yTitle: "" });
  const scatter = paretoScatter(scatterEl, { onPick: (id) => ctx.navigate(`/jobs/${id}`) });

  let jobs = new Map();
  try {
    jobs = new Map((await api.listJobs({ limit: 200 })).items.map((j) => [j.id, j]));
  } catch (error) {
    if (error.kind === "auth") throw error;
    feedback.append(errorBox(error, "Could not load jobs: "));
    return null;
  }
  // Picked jobs older than the newest 200 are fetched one by one.
  await Promise.all([...picked].filter((id) => !jobs.has(id)).map((id) =>
    api.getJob(id).then((j) => jobs.set(id, j)).catch(() => picked.delete(id))));

  function sync() {
    history.replaceState(null, "", `#/compare?ids=${[...picked].join(",")}&key=${encodeURIComponent(key)}`);
    root.querySelector("#compare-count").textContent = `${picked.size} of ${MAX_JOBS} jobs picked`;
  }

  function drawPicker() {
    picker.replaceChildren(...[...jobs.values()].map((job) => h("label", { class: "pick-row" },
      h("input", { type: "checkbox", value: job.id, checked: picked.has(job.id),
        disabled: !picked.has(job.id) && picked.size >= MAX_JOBS,
        onchange: (e) => { e.target.checked ? picked.add(job.id) : picked.delete(job.id); refresh(); } }),
      ` ${jobTitle(job)} `, statusBadge(job.status))));
    if (!jobs.size) picker.append(h("p", {}, "No jobs yet."));
  }

  const cache = new Map();  // `${id}/${key}` → metrics answer, so switching back is instant
  async function drawOverlay() {
    if (!picked.size) return overlay.message("Pick jobs above to overlay their series.");
    const ids = [...picked];
    const answers = await Promise.all(ids.map((id) => {
      const k = `${id}/${key}`;
      if (!cache.has(k)) cache.set(k, api.jobMetrics(id, { keys: [key] }).catch((e) => (cache.delete(k), { error: e })));
      return cache.get(k);
    }));
    const keys = new Set(Object.keys(SERIES));
    answers.forEach((a) => (a.keys || []).forEach((k) => keys.add(k)));
    keySelect.replaceChildren(...[...keys].map((k) => h("option", { value: k, selected: k === key }, describe(k).label)));
    const lines = ids.map((id, i) => ({ key: `${id}:${key}`, name: jobTitle(jobs.get(id)),
      percent: describe(key).percent, ...(answers[i].series?.[key] || { steps: [], values: [] }) }))
      .filter((l) => l.steps.length);
    if (!lines.length) return overlay.message(`None of the picked jobs has ${describe(key).label} yet.`);
    const d = describe(key);
    return overlay.update(lines, { title: `${d.label} across jobs`, yTitle: d.axis, yPercent: d.percent });
  }

  function drawScatter() {
    const points = [...picked].map((id) => jobs.get(id)).map((job) => {
      const v = { ...(job.latest || {}), ...(job.summary || {}) };
      return { id: job.id, label: `#${job.id}`, x: flopsReduction(v), y: v.test_accuracy };
    }).filter((p) => typeof p.x === "number" && typeof p.y === "number");
    if (!points.length) return scatter.message("No picked job has both a test accuracy and a FLOPs reduction yet.");
    const front = paretoFront(points);
    for (const p of points) p.onFront = front.includes(p);
    return scatter.update({ points, front });
  }

  function drawTable() {
    const rows = [...picked].map((id) => jobs.get(id)).map((job) => {
      const v = { ...(job.latest || {}), ...(job.summary || {}) };
      return h("tr", {}, h("td", { "data-label": "Job" }, h("a", { href: `#/jobs/${job.id}` }, jobTitle(job))),
        h("td", { "data-label": "Status" }, statusBadge(job.status)),
        h("td", { "data-label": "Method" }, job.method), h("td", { "data-label": "Settings" }, settings(job.config)),
        h("td", { "data-label": "Test acc." }, pct(v.test_accuracy, 2)),
        h("td", { "data-label": "Group sparsity" }, pct(v.group_sparsity)),
        h("td", { "data-label": "FLOPs reduction" }, pct(flopsReduction(v))));
    });
    table.replaceChildren(rows.length ? h("table", { class: "responsive", id: "compare-table" },
      h("thead", {}, h("tr", {}, ["Job", "Status", "Method", "Settings", "Test acc.", "Group sparsity",
        "FLOPs reduction"].map((t) => h("th", {}, t)))), h("tbody", {}, rows)) : "");
  }

  function refresh() {
    sync();
    drawPicker();
    drawTable();
    return Promise.all([drawOverlay(), drawScatter()]);
  }
  await refresh();
  return null;
}

/** The hyper-parameters that tell runs of one method apart. */
function settings(config) {
  if (config.method === "grda" || config.method === "sdprun") return `c ${config.c}, μ ${config.mu}`;
  if (config.method === "sgd") return `lr ${config.lr}, momentum ${config.momentum}`;
  return `${config.target} −${Math.round(100 * config.target_ratio)} %`;
}
