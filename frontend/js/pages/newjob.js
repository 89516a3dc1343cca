// The New job form, built from the one document GET /config-spec serves: the JSON Schema of the
// job body (each property's help, default, range, section and x-requires rule), the section
// order, the presets with whether each can run on this service, the data folders the live
// workers report, and the service's limits. A field added to the model appears here with its
// help, default and range without touching this file. Each field is checked as it changes; on
// submit, the API's 422 messages are shown at the fields they name. Under the fields, the pruning
// forecast of the config as it stands (POST /config-spec/forecast, a moment after the last
// change) says which layers the threshold alone will force to zero, and when. Fields with
// per-model defaults (x-model-defaults: c and mu) follow the chosen model until the user edits
// them. The model choice adds the service's ready pushed models (modelchoice.js).

import * as api from "../api.js";
import { allowedText, display, fieldsOf, parseField, requirement } from "../fields.js";
import { errorBox, h, notice } from "../ui.js";
import { forecastView } from "./forecast.js";
import { folderText, limitsNote, presetButton } from "./formparts.js";
import { modelChoice, readyModels } from "./modelchoice.js";

// The two fields the document's `datasets` part is about: each reported folder names its
// `dataset` and its `data_dir`, so the data folder is picked from those a worker has.
const DATASET = "dataset";
const FOLDER = "data_dir";

export async function mount(root, ctx) {
  const doc = await api.configSpec();
  const specs = fieldsOf(doc.schema || {});
  const showModel = modelChoice(specs, readyModels(doc));
  const byName = new Map(specs.map((s) => [s.name, s]));
  const datasets = doc.datasets || { builtin: [], folders: [] };
  const presets = doc.presets || [];
  // Fields other fields' rules look at: changing one re-applies the rules.
  const ruleFields = new Set(specs.map(requirement).filter(Boolean).map((rule) => rule.field));
  const inputs = new Map();      // name → {input, error, note}
  const formError = h("div", { class: "feedback", "aria-live": "polite", id: "form-error" });
  const readOnly = ctx.identity.scope === "read";
  const submitButton = h("button", { type: "submit", class: "primary", id: "submit-job", disabled: readOnly },
    "Submit job");
  const folderPicker = byName.has(DATASET) && byName.has(FOLDER);
  const forecastBox = h("div", { class: "forecast-box", id: "forecast-box", "aria-live": "polite",
    dataset: { state: "pending" } });
  let forecastTimer = null;
  let forecastAsked = 0;
  const followsModel = specs.filter((s) => s.modelDefaults);
  const edited = new Set();  // fields with model defaults that the user (or a preset) set

  const rawOf = (spec, input) => (spec.kind === "bool" ? input.checked : input.value);
  const isSelect = (spec) => spec.kind === "enum" || (folderPicker && spec.name === FOLDER);

  function control(spec) {
    const id = `field-${spec.name}`;
    let input;
    if (spec.kind === "enum") {
      input = h("select", { id, name: spec.name }, spec.nullable ? h("option", { value: "" }, "default") : null,
        spec.choices.map((c) => h("option", { value: String(c) }, spec.labels?.[c] ?? String(c))));
    } else if (isSelect(spec)) {
      input = h("select", { id, name: spec.name });   // options: the folders of the dataset chosen
    } else if (spec.kind === "bool") {
      input = h("input", { id, name: spec.name, type: "checkbox" });
    } else {
      const numeric = spec.kind === "int" || spec.kind === "float";
      input = h("input", { id, name: spec.name, type: "text", autocomplete: "off",
        inputmode: numeric ? (spec.kind === "int" ? "numeric" : "decimal") : undefined,
        placeholder: spec.nullable ? "none"
          : spec.kind === "tuple" ? `${spec.tuple.length} comma-separated values`
            : spec.kind === "list" ? "comma-separated" : "" });
    }
    const error = h("p", { class: "field-error", id: `error-${spec.name}`, hidden: true });
    const note = h("p", { class: "field-note", id: `note-${spec.name}`, role: "status", hidden: true });
    const allowed = isSelect(spec) ? "" : allowedText(spec);
    const rule = requirement(spec);
    const help = h("p", { class: "help", id: `help-${spec.name}` }, spec.help,
      allowed ? ` — ${allowed}` : "",
      rule && !rule.hidden ? ` (only with ${rule.field} ${rule.one_of.join(" or ")})` : "");
    input.setAttribute("aria-describedby", `error-${spec.name} note-${spec.name} help-${spec.name}`);
    input.addEventListener(isSelect(spec) || spec.kind === "bool" ? "change" : "input", () => {
      if (spec.modelDefaults) edited.add(spec.name);
      check(spec.name);
      if (ruleFields.has(spec.name) || spec.name === DATASET || spec.name === "model") applyRules();
      scheduleForecast();
    });
    inputs.set(spec.name, { input, error, note });
    return h("div", { class: `field field-${spec.kind}`, dataset: { field: spec.name } },
      h("label", { for: id }, spec.name), input, note, help, error);
  }

  // The data folder: a <select> of the folders live workers report for the chosen dataset; a
  // builtin dataset has only "none" (its rule locks the field there anyway).
  function refreshFolders(wanted) {
    if (!folderPicker) return;
    const { input, note } = inputs.get(FOLDER);
    const dataset = inputs.get(DATASET).input.value;
    const keep = wanted === undefined ? input.value : display(byName.get(FOLDER), wanted);
    const builtin = (datasets.builtin || []).includes(dataset);
    const folders = builtin ? [] : (datasets.folders || []).filter((f) => f.dataset === dataset);
    input.replaceChildren(
      ...(builtin ? [h("option", { value: "" }, "none")] : []),
      ...folders.map((f) => h("option", { value: f.data_dir }, folderText(f))));
    const values = [...input.options].map((o) => o.value);
    input.value = values.includes(keep) ? keep : (values[0] ?? "");
    const missing = !builtin && !folders.length;
    note.textContent = missing
      ? `no live worker reports a ${dataset} folder; put one under a worker's data root, or choose another dataset`
      : "";
    note.hidden = !missing;
  }

  function setValue(name, value) {
    const { input } = inputs.get(name);
    const spec = byName.get(name);
    if (spec.kind === "bool") input.checked = Boolean(value);
    else if (folderPicker && name === FOLDER) refreshFolders(value);
    else input.value = display(spec, value);
  }

  function showError(name, message) {
    const { input, error } = inputs.get(name);
    error.textContent = message || "";
    error.hidden = !message;
    input.setAttribute("aria-invalid", message ? "true" : "false");
  }

  function check(name) {
    const spec = byName.get(name);
    const { input } = inputs.get(name);
    if (input.disabled) return showError(name, "");
    showError(name, parseField(spec, rawOf(spec, input)).error);
  }

  /** The field's value as the API will see it: its default when the form leaves it out. */
  function valueOf(name) {
    const spec = byName.get(name);
    const { input } = inputs.get(name);
    if (input.disabled) return spec.default;
    const parsed = parseField(spec, rawOf(spec, input));
    return parsed.error ? undefined : parsed.value;
  }

  // A field whose rule is not met (momentum for sdprun, valley_interval without a twin) is locked
  // to its default, which is what the API insists on. Repeated until nothing changes, so a chain
  // of rules settles whatever the schema's order: method unlocks reference, which unlocks
  // valley_interval.
  function applyRules() {
    refreshFolders();
    for (let pass = 0; pass <= specs.length; pass += 1) {
      let changed = false;
      for (const spec of specs) {
        const rule = requirement(spec);
        if (!rule || !inputs.has(rule.field)) continue;
        const locked = !rule.one_of.includes(valueOf(rule.field));
        const { input } = inputs.get(spec.name);
        if (locked) {
          setValue(spec.name, spec.default);
          edited.delete(spec.name);
        }
        if (input.disabled !== locked) {
          input.disabled = locked;
          changed = true;
        }
        if (rule.hidden) input.closest(".field").hidden = locked;  // only for pushed models
        check(spec.name);
      }
      if (!changed) break;
    }
    applyModelDefaults();
    showModel(inputs);
  }

  // c and mu start at the chosen model's defaults, and follow the model until edited.
  function applyModelDefaults() {
    const model = inputs.has("model") ? inputs.get("model").input.value : null;
    for (const spec of followsModel) {
      const { input } = inputs.get(spec.name);
      if (input.disabled || edited.has(spec.name) || !(model in spec.modelDefaults)) continue;
      setValue(spec.name, spec.modelDefaults[model]);
      check(spec.name);
    }
  }

  /** The body the form would submit, or null while a field is marked. */
  function formBody() {
    const body = {};
    for (const spec of specs) {
      const { input } = inputs.get(spec.name);
      if (input.disabled) continue;
      const parsed = parseField(spec, rawOf(spec, input));
      if (parsed.error) return null;
      body[spec.name] = parsed.value;
    }
    return body;
  }

  function scheduleForecast() {
    clearTimeout(forecastTimer);
    forecastBox.dataset.state = "pending";
    forecastTimer = setTimeout(showForecast, 300);
  }

  async function showForecast() {
    const asked = ++forecastAsked;
    const body = formBody();
    const say = (text) => h("p", { class: "forecast-line muted", id: "forecast-line" }, h("strong", {}, "Forecast: "), text);
    let shown;
    if (!body) {
      shown = say("fix the marked fields to see which layers the threshold forces to zero.");
    } else {
      try {
        const answer = await api.forecastConfig(body);
        shown = forecastView(answer.forecast);
      } catch (error) {
        shown = say(error.kind === "validation"
          ? `none until the API accepts the config (${error.message}).` : `unavailable (${error.message}).`);
      }
    }
    if (asked !== forecastAsked) return;  // a newer change asked again
    forecastBox.replaceChildren(...(shown ? [shown] : []));
    forecastBox.dataset.state = "ready";
  }

  function applyValues(values) {
    // A preset's c or mu that is its model's own default follows the model like an unset one.
    const model = values.model ?? byName.get("model")?.default;
    for (const spec of followsModel) {
      if (spec.name in values && values[spec.name] !== spec.modelDefaults[model]) edited.add(spec.name);
      else edited.delete(spec.name);
    }
    for (const spec of specs) {
      if (!(folderPicker && spec.name === FOLDER)) setValue(spec.name, spec.name in values ? values[spec.name] : spec.default);
    }
    if (folderPicker) setValue(FOLDER, FOLDER in values ? values[FOLDER] : byName.get(FOLDER).default);
    applyRules();
    for (const spec of specs) check(spec.name);
    scheduleForecast();
  }

  // An overlay preset (fine-tuning a pushed model) sets its own fields only, on top of the model
  // and data already chosen.
  function overlayValues(values) {
    for (const [name, value] of Object.entries(values)) {
      if (!inputs.has(name)) continue;
      setValue(name, value);
      if (byName.get(name).modelDefaults) edited.add(name);
    }
    applyRules();
    for (const spec of specs) check(spec.name);
    scheduleForecast();
  }

  function applyPreset(preset) {
    if (preset.overlay && !showModel(inputs)?.newest.has_weights) {
      return formError.replaceChildren(notice(`Preset “${preset.label}” is for a pushed model with trained `
        + "weights: choose one as the model first.", "error"));
    }
    (preset.overlay ? overlayValues : applyValues)(preset.values || {});
    formError.replaceChildren(notice(`Preset “${preset.label}”: ${preset.about}`));
  }

  async function submit(event) {
    event.preventDefault();
    formError.replaceChildren();
    const body = {};
    const bad = [];
    for (const spec of specs) {
      const { input } = inputs.get(spec.name);
      if (input.disabled) {
        showError(spec.name, "");
        continue;
      }
      const parsed = parseField(spec, rawOf(spec, input));
      showError(spec.name, parsed.error);
      if (parsed.error) bad.push(spec.name);
      else body[spec.name] = parsed.value;
    }
    if (bad.length) return focusFirst(bad, "Fix the marked fields first.");
    submitButton.disabled = true;
    try {
      const job = await api.submitJob(body);
      ctx.navigate(`/jobs/${job.id}`);
    } catch (error) {
      if (error.kind !== "validation") return formError.replaceChildren(errorBox(error, "Not submitted: "));
      const unplaced = [];
      for (const item of error.fields) {
        const name = item.field.split(".")[0];
        const text = item.message + (item.allowed ? ` (allowed ${item.allowed})` : "");
        if (inputs.has(name)) showError(name, text);
        else unplaced.push(`${item.field}: ${text}`);
      }
      focusFirst(error.fields.map((f) => f.field.split(".")[0]).filter((n) => inputs.has(n)),
        unplaced.length ? unplaced.join("; ") : "The API refused some fields; see the messages below them.");
    } finally {
      submitButton.disabled = readOnly;
    }
  }

  function focusFirst(names, message) {
    formError.replaceChildren(notice(message, "error"));
    if (names.length) inputs.get(names[0]).input.focus();
  }

  // Sections in the document's order; a property whose section is not listed goes to "Other".
  const titles = [...(doc.sections || [])];
  const sectionOf = (spec) => (titles.includes(spec.section) ? spec.section : "Other");
  if (specs.some((s) => sectionOf(s) === "Other")) titles.push("Other");
  const fieldsets = titles.map((title) => [title, specs.filter((s) => sectionOf(s) === title)])
    .filter(([, members]) => members.length)
    .map(([title, members]) => h("fieldset", {}, h("legend", {}, title), members.map(control)));

  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "New job")),
    ...(readOnly ? [notice("Your token is read-only: submitting needs a submit or admin token.", "error")] : []),
    h("div", { class: "presets", role: "group", "aria-label": "presets" }, h("span", { class: "muted" }, "Presets:"),
      presets.map((p) => presetButton(p, applyPreset))),
    h("form", { id: "job-form", class: "job-form", noValidate: true, onsubmit: submit },
      fieldsets, forecastBox, formError, h("div", { class: "form-actions" }, submitButton)),
    limitsNote(doc.limits));

  const first = presets.find((p) => p.available && !p.overlay);
  if (first) applyPreset(first);
  else applyValues({});
  if (ctx.query.get("model") && inputs.has("model")) {  // "New job with this model" on its page
    setValue("model", ctx.query.get("model"));
    applyRules();
    scheduleForecast();
  }
  formError.replaceChildren();
  return () => clearTimeout(forecastTimer);
}
