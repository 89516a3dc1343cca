// Pieces of the New job form that need none of its state: a preset's button, a data folder's
// label and the service's limits under the form.

import { h } from "../ui.js";

/** A preset's button; one this service cannot run is disabled, with the reason beside it. */
export function presetButton(preset, onApply) {
  const button = h("button", { type: "button", id: `preset-${preset.id}`, disabled: !preset.available,
    title: preset.available ? preset.about : preset.disabled_reason || "not available on this service",
    onclick: () => onApply(preset) }, preset.label);
  if (preset.available) return button;
  return h("span", { class: "preset unavailable" }, button,
    h("small", { class: "preset-reason", id: `preset-reason-${preset.id}` }, preset.disabled_reason || "not available here"));
}

/** "cifar10-small (15 samples, 3×32×32)". */
export function folderText(folder) {
  const parts = [];
  if (Number.isFinite(folder.train_size)) parts.push(`${folder.train_size.toLocaleString("en-US")} samples`);
  if (Array.isArray(folder.input_shape)) parts.push(folder.input_shape.join("×"));
  return parts.length ? `${folder.data_dir} (${parts.join(", ")})` : folder.data_dir;
}

/** The service's limits, so a refused huge model is no surprise. */
export function limitsNote(limits) {
  const entries = Object.entries(limits || {});
  if (!entries.length) return null;
  const shown = (v) => (typeof v === "number" ? v.toLocaleString("en-US") : String(v));
  return h("details", { id: "service-limits", class: "service-limits" },
    h("summary", {}, "Service limits"),
    h("ul", {}, entries.map(([name, { value, help }]) =>
      h("li", { dataset: { limit: name } }, h("code", {}, name), `: ${shown(value)}`, help ? ` — ${help}` : ""))));
}
