// The "Small model" section of a job page: what physically removing the pruned groups bought
// (params, FLOPs, measured latency, accuracy of the compact network) and the exported files, each
// with its SHA-256.

import * as api from "../api.js";
import { errorBox, h, mayChange, num, pct } from "../ui.js";

export function smallModelSection(job, identity) {
  const el = h("section", { class: "card", id: "small-model" }, h("h2", {}, "Small model"));
  const report = job.summary && job.summary.compact;
  if (!report) {
    el.append(h("p", { class: "muted", id: "small-model-empty" }, job.status === "succeeded"
      ? "This job ran with compact off, so no small model was built."
      : "The pruned groups are removed physically, timed and exported when the job succeeds."));
    return el;
  }
  el.append(reportTable(report));
  const files = h("div", { id: "artifacts" }, h("p", { class: "muted" }, "Loading the exported files…"));
  el.append(h("h3", {}, "Downloads"), files);
  api.listArtifacts(job.id).then((artifacts) => files.replaceChildren(artifactList(artifacts, mayChange(identity, job))))
    .catch((error) => files.replaceChildren(errorBox(error, "Could not list the files: ")));
  return el;
}

function reportTable(r) {
  const count = (v) => (typeof v === "number" ? v.toLocaleString() : "–");
  const rows = [
    ["params", count(r.dense_params), count(r.compact_params), pct(1 - r.params_ratio)],
    ["FLOPs per sample", count(r.dense_flops), count(r.compact_flops), `${num(r.flops_reduction)}× fewer`],
    ...(r.latency || []).map((l) => [`latency, ${l.device} batch ${l.batch_size}`, `${num(l.dense_ms)} ms`,
      `${num(l.compact_ms)} ms`, `${num(l.speedup)}× faster`]),
    ["test accuracy", pct(r.pruned_test_accuracy, 2), pct(r.compact_test_accuracy, 2),
      r.accuracy_equal ? "equal" : "differs"],
  ];
  // Four columns of numbers: on a phone the table scrolls inside its box, not the whole page.
  return h("div", { class: "table-scroll" }, h("table", { class: "kv", id: "compact-report" },
    h("thead", {}, h("tr", {}, ["", "pruned (dense shape)", "compact", "change"].map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c, i) => (i ? h("td", {}, c) : h("th", {}, c))))))));
}

/** The exported files; links only for whoever may download them (the owner or an admin). */
function artifactList(artifacts, mayDownload) {
  if (!artifacts.length) return h("p", { class: "muted" }, "No exported files.");
  const list = h("ul", { class: "artifacts" }, artifacts.map((a) => h("li", {},
    mayDownload ? h("a", { href: a.url, download: a.name }, a.name) : h("span", {}, a.name),
    ` ${a.format}, ${(a.bytes / 1024).toFixed(1)} KiB`,
    h("br"), h("code", { class: "sha", title: "SHA-256" }, a.sha256))));
  return mayDownload ? list
    : h("div", {}, list, h("p", { class: "muted", id: "download-note" }, "Only the job's owner or an admin can download these files."));
}
