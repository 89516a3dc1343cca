// Every job, filtered by status, owner, tag and text, kept current by the job-list event stream.
// Progress events patch one row in place; a job the list has not seen (or a status change,
// which moves started/finished times) reloads the page of results, debounced.

import * as api from "../api.js";
import { debounce, errorBox, flopsReduction, h, jobTitle, mayChange, pct,
  progressBar, statusBadge } from "../ui.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];
const PAGE = 50;

export async function mount(root, ctx) {
  const filters = { status: ctx.query.get("status") || "", owner: ctx.query.get("owner") || "",
    tag: ctx.query.get("tag") || "", q: ctx.query.get("q") || "" };
  let limit = PAGE;
  let rows = new Map();          // id → job, in the order the API returned them
  const picked = new Set();      // ids ticked for Compare

  const body = h("tbody");
  const summary = h("p", { class: "muted", id: "jobs-total" });
  const feedback = h("div", { class: "feedback", "aria-live": "polite" });
  const live = h("span", { class: "live-state", id: "list-live" }, "connecting…");
  const more = h("button", { type: "button", hidden: true, onclick: () => { limit += PAGE; load(); } },
    "Show more");
  const compareButton = h("button", { type: "button", id: "compare-picked", disabled: true,
    onclick: () => ctx.navigate(`/compare?ids=${[...picked].join(",")}`) }, "Compare selected");

  const field = (name, label, input) => h("label", { class: "filter" }, label, input);
  const onFilter = debounce(() => { limit = PAGE; syncHash(); load(); }, 250);
  const bind = (input, name) => {
    input.value = filters[name];
    input.addEventListener("input", () => { filters[name] = input.value.trim(); onFilter(); });
    return input;
  };
  const statusSelect = bind(h("select", { id: "filter-status" }, h("option", { value: "" }, "any"),
    STATUSES.map((s) => h("option", { value: s }, s))), "status");

  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Jobs"), live,
      ctx.identity.scope !== "read" ? h("a", { class: "button primary", href: "#/new" }, "New job") : null),
    h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
      field("status", "Status", statusSelect),
      field("owner", "Owner", bind(h("input", { id: "filter-owner", placeholder: "token name" }), "owner")),
      field("tag", "Tag", bind(h("input", { id: "filter-tag", placeholder: "tag" }), "tag")),
      field("q", "Search", bind(h("input", { id: "filter-q", type: "search",
        placeholder: "name, model, dataset, method" }), "q")),
      compareButton),
    feedback, summary,
    h("div", { class: "table-wrap" }, h("table", { class: "jobs responsive", id: "jobs-table" },
      h("thead", {}, h("tr", {}, ["", "Job", "Status", "Progress", "Model", "Dataset", "Method",
        "Test acc.", "Group sparsity", "FLOPs reduction", ""].map((t) => h("th", {}, t)))),
      body)),
    more);

  function syncHash() {
    const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v)).toString();
    history.replaceState(null, "", `#/jobs${query ? "?" + query : ""}`);
  }

  async function load() {
    try {
      const page = await api.listJobs({ ...filters, limit });
      rows = new Map(page.items.map((j) => [j.id, j]));
      feedback.replaceChildren();
      summary.textContent = `${page.total} job${page.total === 1 ? "" : "s"}` +
        (page.total > page.items.length ? `, newest ${page.items.length} shown` : "");
      more.hidden = page.total <= page.items.length;
      render();
    } catch (error) {
      if (error.kind === "auth") throw error;
      feedback.replaceChildren(errorBox(error, "Could not load jobs: "));
    }
  }

  function render() {
    body.replaceChildren(...[...rows.values()].map(row));
    if (!rows.size) {
      body.append(h("tr", {}, h("td", { colspan: 11, class: "empty" },
        Object.values(filters).some(Boolean) ? "No job matches these filters."
          : "No jobs yet. Submit one from New job, or with `pruneboard submit`.")));
    }
    compareButton.disabled = picked.size < 1;
    compareButton.textContent = `Compare selected (${picked.size})`;
  }

  function row(job) {
    const values = { ...(job.latest || {}), ...(job.summary || {}) };
    const pick = h("input", { type: "checkbox", checked: picked.has(job.id),
      "aria-label": `select job ${job.id} for Compare`, disabled: !picked.has(job.id) && picked.size >= 20,
      onchange: (e) => { e.target.checked ? picked.add(job.id) : picked.delete(job.id); render(); } });
    const cell = (label, ...content) => h("td", { "data-label": label }, ...content);
    return h("tr", { id: `job-row-${job.id}`, dataset: { status: job.status } },
      h("td", { class: "pick" }, pick),
      cell("Job", h("a", { href: `#/jobs/${job.id}` }, jobTitle(job)),
        h("div", { class: "muted small" }, job.owner, job.tags.length ? ` · ${job.tags.join(", ")}` : "")),
      cell("Status", statusBadge(job.status)),
      cell("Progress", progressBar(job)),
      cell("Model", job.model), cell("Dataset", job.dataset), cell("Method", job.method),
      cell("Test acc.", pct(values.test_accuracy)),
      cell("Group sparsity", pct(values.group_sparsity)),
      cell("FLOPs reduction", pct(flopsReduction(values))),
      h("td", { class: "actions" }, actions(job)));
  }

  function actions(job) {
    if (!mayChange(ctx.identity, job)) return [];
    const act = (label, call) => h("button", { type: "button", class: `small ${label.toLowerCase()}`,
      onclick: async () => {
        try {
          rows.set(job.id, await call(job.id));
          render();
        } catch (error) {
          feedback.replaceChildren(errorBox(error, `${label} job ${job.id}: `));
        }
      } }, label);
    if (job.status === "queued" || job.status === "running") return [act("Cancel", api.cancelJob)];
    if (job.status === "failed" || job.status === "cancelled") return [act("Retry", api.retryJob)];
    return [];
  }

  const reload = debounce(load, 300);
  const stop = api.followJobList({
    onState(stateName) {
      live.textContent = { live: "● live", reconnecting: "reconnecting…", closed: "live updates off" }[stateName];
      live.dataset.state = stateName;
    },
    job(change) {
      const known = rows.get(change.id);
      if (!known || known.status !== change.status) return reload();
      Object.assign(known, { step: change.step, total_steps: change.total_steps, latest: change.latest });
      document.getElementById(`job-row-${change.id}`)?.replaceWith(row(known));
    },
  });
  // ETAs move even when no event arrives.
  const tick = setInterval(() => {
    for (const job of rows.values()) {
      if (job.status === "running") document.getElementById(`job-row-${job.id}`)?.replaceWith(row(job));
    }
  }, 5000);

  await load();
  return () => { stop(); clearInterval(tick); };
}
