// The pruning forecast (pruneboard.spec.forecast before a run, pruning.forecast from the start
// event): which layers the threshold alone forces to zero, at which step. The API words the
// warning; this shows it, or that nothing is forced, and the per-layer steps under a toggle.

import { h, pct } from "../ui.js";

const BASIS = {
  architecture: "from the model's architecture and its expected initial weights, before the run",
  engine: "from the run's own initial weights",
};

/** One line and a per-layer table, or null for a method without a threshold. */
export function forecastView(forecast, { id = "forecast" } = {}) {
  if (!forecast) return null;
  const total = Number(forecast.total_steps).toLocaleString("en-US");
  const line = forecast.warning
    ? h("p", { class: "forecast-line warn", id: `${id}-line` }, h("strong", {}, "Forecast: "), forecast.warning)
    : h("p", { class: "forecast-line ok", id: `${id}-line` }, h("strong", {}, "Forecast: "),
      `no layer is forced to zero by the threshold alone within the ${total} steps.`);
  const unit = forecast.method === "grda" ? "weights" : "units";
  const rows = (forecast.layers || []).map((layer) => h("tr", { dataset: { layer: layer.name } },
    h("td", { "data-label": "layer" }, h("code", {}, layer.name),
      layer.producers && layer.producers.length > 1 ? h("span", { class: "muted" }, ` (+${layer.producers.length - 1} layers)`) : ""),
    h("td", { "data-label": unit }, Number(layer.units).toLocaleString("en-US")),
    h("td", { "data-label": "half forced at step" }, layer.step === null || layer.step === undefined ? "–" : `~${Number(layer.step).toLocaleString("en-US")}`),
    h("td", { "data-label": "forced by the end" }, pct(layer.forced_fraction, 0))));
  return h("div", { class: `forecast ${forecast.warning ? "warn" : "ok"}`, id, dataset: { basis: forecast.basis || "" } },
    line,
    h("details", { class: "forecast-layers" },
      h("summary", {}, `Per layer (${BASIS[forecast.basis] || forecast.basis})`),
      h("div", { class: "table-scroll" }, h("table", { class: "responsive" },
        h("thead", {}, h("tr", {}, h("th", {}, "layer"), h("th", {}, unit),
          h("th", {}, "half forced at step"), h("th", {}, "forced by the end"))),
        h("tbody", {}, rows)))));
}
