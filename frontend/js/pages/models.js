// Models: the networks people pushed (#/models), each with its newest version's status, owner,
// input shape, size and prunable share, and the upload form; #/models/NAME shows one model's
// versions in full (modelview.js). A version is queued, then a worker inspects it (running),
// then it is ready or failed: while any version is unfinished the page asks again every
// POLL_MS, and stops once all are settled, so an idle page costs nothing.

import * as api from "../api.js";
import { errorBox, h, statusBadge, when } from "../ui.js";
import { count, modelView, POLL_MS, shapeText, share, UNSETTLED } from "./modelview.js";
import { uploadForm } from "./modelupload.js";

export async function mount(root, ctx) {
  if (ctx.params[0]) return modelView(root, ctx, decodeURIComponent(ctx.params[0]));
  const readOnly = ctx.identity.scope === "read";
  const feedback = h("div", { class: "feedback", "aria-live": "polite" });
  const list = h("div", { class: "table-wrap", id: "models-list" });
  const pushStatus = h("div", { id: "push-status", "aria-live": "polite" });
  let pushed = null;  // {name, version} of this page's last upload, followed until it settles
  let timer = null;
  let closed = false;

  async function load() {
    clearTimeout(timer);
    let models;
    try {
      ({ models } = await api.listModels());
      feedback.replaceChildren();
    } catch (error) {
      if (error.kind === "auth") throw error;
      feedback.replaceChildren(errorBox(error, "Could not load the models: "));
      return;
    }
    list.replaceChildren(models.length ? table(models)
      : h("p", { class: "empty" }, "No model pushed yet. Push one with the form below, or with ",
        h("code", {}, "pruneboard model push"), "."));
    showPushed(models.find((m) => m.name === pushed?.name && m.latest.version === pushed.version));
    if (!closed && models.some((m) => UNSETTLED.includes(m.latest.status))) {
      timer = setTimeout(() => load().catch(() => {}), POLL_MS);
    }
  }

  // The upload's own line: its status in words, and where to go once it is ready.
  function showPushed(model) {
    if (!model) return;
    const v = model.latest;
    const link = h("a", { href: `#/models/${encodeURIComponent(model.name)}` }, `${model.name} version ${v.version}`);
    const text = { queued: ": queued, waiting for a worker to inspect it…",
      running: ": a worker is inspecting it…", ready: ": ready. Jobs can use it now: ",
      failed: `: inspection failed: ${v.error || "no reason recorded"}` }[v.status] || `: ${v.status}`;
    pushStatus.replaceChildren(h("div", { class: `notice ${v.status === "failed" ? "error" : "info"}`,
      dataset: { status: v.status } }, "Pushed ", link, text, v.status === "ready"
      ? h("a", { href: `#/new?model=${encodeURIComponent(model.name)}`, id: "push-new-job" }, "new job") : null));
  }

  root.append(h("div", { class: "page-head" }, h("h1", {}, "Models")), feedback, list,
    uploadForm({ readOnly, status: pushStatus,
      onPushed: (version, name) => { pushed = { name, version: version.version }; load().catch(() => {}); } }));
  await load();
  return () => { closed = true; clearTimeout(timer); };
}

function table(models) {
  const cell = (label, ...content) => h("td", { "data-label": label }, ...content);
  return h("table", { class: "responsive", id: "models-table" },
    h("thead", {}, h("tr", {}, ["Model", "Version", "Status", "Owner", "Input", "Params", "FLOPs",
      "Prunable", "Pushed"].map((t) => h("th", {}, t)))),
    h("tbody", {}, models.map((m) => {
      const v = m.latest;
      const facts = v.inspection || {};
      return h("tr", { dataset: { model: m.name } },
        cell("Model", h("a", { href: `#/models/${encodeURIComponent(m.name)}` }, m.name)),
        cell("Version", `v${v.version}`, m.versions > 1 ? h("span", { class: "muted" }, ` of ${m.versions}`) : ""),
        cell("Status", statusBadge(v.status), v.status === "failed" && v.error
          ? h("div", { class: "model-error small" }, v.error) : null),
        cell("Owner", m.owner),
        cell("Input", shapeText(v.input_shape), Number.isFinite(v.num_classes ?? facts.num_classes)
          ? h("span", { class: "muted" }, ` → ${v.num_classes ?? facts.num_classes}`) : ""),
        cell("Params", count(facts.params)),
        cell("FLOPs", count(facts.flops)),
        cell("Prunable", share(facts.prunable_param_share), h("span", { class: "muted" }, " of params")),
        cell("Pushed", when(v.created_at)));
    })));
}
