// Workers: host, device, GPU, the data folders each reports, current job and heartbeat age,
// refreshed every few seconds (the heartbeat itself beats every few seconds, so a faster poll
// would show nothing new).

import * as api from "../api.js";
import { duration, errorBox, h } from "../ui.js";

const REFRESH_MS = 3000;
const STALE_S = 60;  // the service's default heartbeat timeout: older means the worker is gone

export async function mount(root) {
  const body = h("div", { class: "table-wrap", id: "workers" });
  const feedback = h("div", { class: "feedback", "aria-live": "polite" });
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Workers")), feedback, body);

  async function load() {
    try {
      const workers = await api.listWorkers();
      feedback.replaceChildren();
      body.replaceChildren(workers.length ? table(workers)
        : h("p", { class: "empty" }, "No worker has reported yet. Start one with `pruneboard worker --cpu` ",
          "or `pruneboard worker --gpus 0`; `pruneboard up` starts one for you."));
    } catch (error) {
      if (error.kind === "auth") throw error;
      feedback.replaceChildren(errorBox(error, "Could not load workers: "));
    }
  }

  function table(workers) {
    const cell = (label, ...content) => h("td", { "data-label": label }, ...content);
    return h("table", { class: "responsive" },
      h("thead", {}, h("tr", {}, ["Worker", "Host", "Device", "GPU", "Data folders", "Current job", "Heartbeat"]
        .map((t) => h("th", {}, t)))),
      h("tbody", {}, workers.map((w) => h("tr", { class: w.heartbeat_age_s > STALE_S ? "stale" : "" },
        cell("Worker", w.id), cell("Host", w.host), cell("Device", w.device),
        cell("GPU", w.gpu_name ? `${w.gpu_name}${w.gpu_memory_mb ? ` (${(w.gpu_memory_mb / 1024).toFixed(0)} GiB)` : ""}` : "none"),
        cell("Data folders", folders(w.datasets)),
        cell("Current job", w.current_job_id ? h("a", { href: `#/jobs/${w.current_job_id}` }, `#${w.current_job_id}`) : "idle"),
        cell("Heartbeat", `${duration(w.heartbeat_age_s)} ago`, w.heartbeat_age_s > STALE_S ? " (stale)" : "")))));
  }

  /** "cifar10: c10 (50000), mnist: mnist (60000)": dataset, folder name and training samples;
   *  the tooltip adds the input shape and classes. Builtin datasets need no folder. */
  function folders(datasets) {
    if (!Array.isArray(datasets) || !datasets.length) return h("span", { class: "muted" }, "none");
    return h("span", { class: "data-folders" }, datasets.flatMap((f, i) => [
      i ? ", " : null,
      h("span", { class: "data-folder", title: folderDetails(f) },
        `${f.dataset}: ${f.data_dir}${Number.isFinite(f.train_size) ? ` (${f.train_size})` : ""}`)]));
  }

  function folderDetails(f) {
    const parts = [];
    if (Array.isArray(f.input_shape)) parts.push(f.input_shape.join("×"));
    if (Number.isFinite(f.num_classes)) parts.push(`${f.num_classes} classes`);
    if (Number.isFinite(f.train_size)) parts.push(`${f.train_size} training samples`);
    return parts.join(", ");
  }

  await load();
  const timer = setInterval(() => load().catch(() => {}), REFRESH_MS);
  return () => clearInterval(timer);
}
