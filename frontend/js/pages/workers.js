// Workers: host, device, GPU, current job and heartbeat age, refreshed every few seconds (the
// heartbeat itself beats every few seconds, so a faster poll would show nothing new).

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
      h("thead", {}, h("tr", {}, ["Worker", "Host", "Device", "GPU", "Current job", "Heartbeat"]
        .map((t) => h("th", {}, t)))),
      h("tbody", {}, workers.map((w) => h("tr", { class: w.heartbeat_age_s > STALE_S ? "stale" : "" },
        cell("Worker", w.id), cell("Host", w.host), cell("Device", w.device),
        cell("GPU", w.gpu_name ? `${w.gpu_name}${w.gpu_memory_mb ? ` (${(w.gpu_memory_mb / 1024).toFixed(0)} GiB)` : ""}` : "none"),
        cell("Current job", w.current_job_id ? h("a", { href: `#/jobs/${w.current_job_id}` }, `#${w.current_job_id}`) : "idle"),
        cell("Heartbeat", `${duration(w.heartbeat_age_s)} ago`, w.heartbeat_age_s > STALE_S ? " (stale)" : "")))));
  }

  await load();
  const timer = setInterval(() => load().catch(() => {}), REFRESH_MS);
  return () => clearInterval(timer);
}
