// Small DOM and formatting helpers shared by the pages. No URLs, no Plotly.

/** h("a", {href: "#/jobs", class: "x", onclick: fn}, "text", child, …) → an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name in el && name !== "list" && name !== "form") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export const pct = (v, digits = 1) =>
  typeof v === "number" && Number.isFinite(v) ? `${(100 * v).toFixed(digits)} %` : "–";

export const num = (v) =>
  typeof v === "number" && Number.isFinite(v) ? Number(v.toPrecision(4)).toString() : "–";

export function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  const hours = Math.floor(seconds / 3600);
  return hours < 48 ? `${hours} h ${Math.round((seconds % 3600) / 60)} min` : `${Math.round(hours / 24)} d`;
}

export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

/** FLOPs reduction: the share of the dense network's FLOPs that pruning removed. */
export function flopsReduction(values) {
  const remaining = values && values.remaining_flops;
  return typeof remaining === "number" ? 1 - remaining : null;
}

/** Seconds left, from the job's own pace since it started; null when that is unknown. */
export function etaSeconds(job, now = Date.now()) {
  if (job.status !== "running" || !job.started_at || !job.total_steps || !job.step) return null;
  const elapsed = (now - Date.parse(job.started_at)) / 1000;
  if (elapsed <= 0) return null;
  return ((job.total_steps - job.step) * elapsed) / job.step;
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, dataset: { status } }, status);
}

export function progressBar(job) {
  const total = job.total_steps;
  const fraction = job.status === "succeeded" ? 1 : total ? Math.min(job.step / total, 1) : 0;
  const eta = etaSeconds(job);
  const text = total ? `${job.step} / ${total}` : job.status === "queued" ? "waiting" : `${job.step}`;
  return h("div", { class: "progress", title: `step ${job.step} of ${total ?? "?"}` },
    h("div", { class: "progress-track" },
      h("div", { class: "progress-fill", style: `width: ${(100 * fraction).toFixed(1)}%` })),
    h("span", { class: "progress-text" }, text, eta !== null ? ` · ETA ${duration(eta)}` : ""));
}

/** Whether this identity may change the job: admin any, submit its own, read none. */
export function mayChange(identity, job) {
  if (!identity) return false;
  return identity.scope === "admin" || (identity.scope === "submit" && job.owner === identity.name);
}

const HINTS = {
  unreachable: "Check that the service is running; this page retries when you reload it.",
  auth: "Your session has ended or the token was revoked: sign in again.",
  forbidden: "Your token's scope does not allow this.",
};

/** An error as a visible, worded box (never a blank page). */
export function errorBox(error, prefix = "") {
  const hint = HINTS[error.kind];
  return h("div", { class: `notice error kind-${error.kind || "other"}`, role: "alert" },
    h("strong", {}, prefix, error.message || String(error)), hint ? h("p", {}, hint) : null);
}

export function notice(text, kind = "info") {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

export function jobTitle(job) {
  return job.name ? `#${job.id} ${job.name}` : `#${job.id} ${job.model} / ${job.dataset} / ${job.method}`;
}

/** Call fn at most once per `ms`, the last call winning. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
