// One pushed model (#/models/NAME): every version, newest first, with its status, files and what
// the worker's inspection found: parameters, FLOPs, prunable groups and share, the layers left
// dense and why, and each layer. Polls while a version is still queued or being inspected; its
// owner (or an admin) may delete it.

import * as api from "../api.js";
import { errorBox, h, notice, statusBadge, when } from "../ui.js";

export const POLL_MS = 1500;
export const UNSETTLED = ["queued", "running"];
const OPEN_LAYERS = 40;  // a layer table this short is shown open; a longer one on request

export async function modelView(root, ctx, name) {
  const head = h("div", { class: "model-head" });
  const feedback = h("div", { class: "feedback", "aria-live": "polite" });
  const versions = h("div", { class: "model-versions", id: "model-versions" });
  root.append(head, feedback, versions);
  let timer = null;
  let closed = false;

  async function load() {
    clearTimeout(timer);
    let model;
    try {
      model = await api.getModel(name);
    } catch (error) {
      if (error.kind === "auth") throw error;
      if (!head.childElementCount) head.replaceChildren(h("h1", {}, name));
      feedback.replaceChildren(errorBox(error), h("p", {}, h("a", { href: "#/models" }, "All models")));
      return;
    }
    head.replaceChildren(header(model));
    versions.replaceChildren(...model.versions.map(versionCard));
    if (!closed && model.versions.some((v) => UNSETTLED.includes(v.status))) {
      timer = setTimeout(() => load().catch(() => {}), POLL_MS);
    }
  }

  function header(model) {
    const latest = model.versions[0];
    const ready = model.versions.some((v) => v.status === "ready");
    const who = ctx.identity;
    const mayDelete = who.scope === "admin" || (who.scope === "submit" && who.name === model.owner);
    return h("div", {},
      h("div", { class: "page-head" }, h("h1", { id: "model-title" }, model.name),
        latest ? statusBadge(latest.status) : null,
        h("div", { class: "actions model-actions" },
          ready ? h("a", { class: "button primary", id: "new-job-with-model",
            href: `#/new?model=${encodeURIComponent(model.name)}` }, "New job with this model") : null,
          mayDelete ? h("button", { type: "button", id: "delete-model", onclick: () => remove(model) }, "Delete") : null)),
      h("p", { class: "muted", id: "model-meta" }, `owner ${model.owner} · first pushed ${when(model.created_at)} · `,
        `${model.versions.length} version${model.versions.length === 1 ? "" : "s"} · `,
        h("a", { href: "#/models" }, "all models")));
  }

  async function remove(model) {
    if (!confirm(`Delete model ${model.name} and all its versions? Finished jobs keep their numbers.`)) return;
    try {
      await api.deleteModel(model.name);
      ctx.navigate("/models");
    } catch (error) {
      feedback.replaceChildren(errorBox(error, "Not deleted: "));
    }
  }

  await load();
  return () => { closed = true; clearTimeout(timer); };
}

const STATUS_TEXT = {
  queued: "Queued: waiting for a worker to inspect it.",
  running: "A worker is inspecting it: rebuilding the graph, one forward pass, tracing the prunable groups.",
};

function versionCard(v) {
  const facts = v.inspection;
  return h("section", { class: "card model-version", id: `model-version-${v.version}`, dataset: { status: v.status } },
    h("h2", {}, `Version ${v.version} `, statusBadge(v.status)),
    STATUS_TEXT[v.status] ? notice(STATUS_TEXT[v.status]) : null,
    v.status === "failed" ? h("div", { class: "notice error", id: `model-error-${v.version}`, role: "alert" },
      h("strong", {}, "Inspection failed: "), v.error || "no reason recorded") : null,
    facts ? tiles(facts) : null,
    h("div", { class: "model-body" }, facts ? structure(facts) : null, factsTable(v)));
}

function factsTable(v) {
  const rows = [
    ["format", v.format === "onnx" ? "ONNX (converted by a worker)" : "graph JSON"],
    ["input shape", shapeText(v.input_shape)],
    ["classes", String(v.num_classes ?? v.inspection?.num_classes ?? "from the model")],
    ["weights", v.has_weights ? "trained weights: jobs start from them unless init is random"
      : "none: jobs start from weights drawn from their seed"],
    ["files", h("ul", { class: "model-files" }, v.files.map((f) => h("li", {},
      `${f.kind} · ${bytes(f.bytes)} · `, h("span", { class: "sha" }, f.sha256))))],
    ["pushed", when(v.created_at)],
    ["inspected", when(v.finished_at)],
  ];
  return h("table", { class: "kv model-facts" },
    h("tbody", {}, rows.map(([k, value]) => h("tr", {}, h("th", {}, k), h("td", {}, value)))));
}

const exact = (n) => (Number.isFinite(n) ? n.toLocaleString("en-US") : "–");

function tiles(facts) {
  const tile = (label, value, id, title) => h("div", { class: "tile", id, title },
    h("span", { class: "tile-label" }, label), h("span", { class: "tile-value" }, value));
  return h("div", { class: "tiles model-tiles" },
    tile("params", count(facts.params), "model-params", exact(facts.params)),
    tile("FLOPs (one sample)", count(facts.flops), "model-flops", exact(facts.flops)),
    tile("prunable params", share(facts.prunable_param_share), "model-prunable",
      "share of the parameters that sit in prunable groups"),
    tile("prunable conv weights", share(facts.prunable_share), "model-prunable-conv"),
    tile("prunable groups", exact(facts.groups), "model-groups"),
    tile("prunable units", exact(facts.units), "model-units", "filters and neurons the groups can remove"),
    tile("layer outputs", count(facts.outputs), "model-outputs", "values the layers produce per sample"));
}

/** What stays dense and why, and every layer with its parameters. */
function structure(facts) {
  const dense = facts.dense_layers || [];
  const layers = facts.layers || [];
  return h("div", { class: "model-inspection" },
    h("h3", { class: "model-sub" }, "Left dense"),
    dense.length ? h("ul", { class: "dense-layers", id: "dense-layers" }, dense.map((d) => h("li", {},
      h("code", {}, (d.layers || []).join(", ")), ` — ${d.reason}`)))
      : h("p", { class: "muted", id: "dense-layers" }, "Nothing: every layer's units can be pruned."),
    h("details", { class: "model-layers", open: layers.length <= OPEN_LAYERS },
      h("summary", {}, `Layers (${layers.length})`),
      h("div", { class: "table-scroll" }, h("table", { id: "model-layers" },
        h("thead", {}, h("tr", {}, h("th", {}, "layer"), h("th", {}, "type"), h("th", {}, "params"))),
        h("tbody", {}, layers.map((l) => h("tr", {}, h("td", {}, h("code", {}, l.name)), h("td", {}, l.type),
          h("td", { class: "number" }, exact(l.params)))))))));
}

/** "3×32×32". */
export const shapeText = (shape) => (Array.isArray(shape) ? shape.join("×") : "–");

/** 1234567 → "1.23 M". */
export function count(n) {
  if (!Number.isFinite(n)) return "–";
  const [scale, unit] = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]].find(([s]) => Math.abs(n) >= s) || [1, ""];
  return unit ? `${Number((n / scale).toPrecision(3))} ${unit}` : String(n);
}

export const share = (v) => (Number.isFinite(v) ? `${(100 * v).toFixed(1)} %` : "–");

const bytes = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
