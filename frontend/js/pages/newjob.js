// The New job form, built from the API's config spec, so a field added to the engine appears
// here with its help, default and range without touching this file. Each field is checked as it
// changes; on submit, the API's 422 messages are shown at the fields they name.

import * as api from "../api.js";
import { allowedText, display, JOB_FIELDS, parseField, parseJobField, requirement } from "../fields.js";
import { PRESETS, SECTIONS } from "../presets.js";
import { errorBox, h, notice } from "../ui.js";

export async function mount(root, ctx) {
  const specs = [...JOB_FIELDS, ...(await api.configSpec())];
  const byName = new Map(specs.map((s) => [s.name, s]));
  // Fields other fields' rules look at: changing one re-applies the rules.
  const ruleFields = new Set(specs.map(requirement).filter(Boolean).map((rule) => rule.field));
  const inputs = new Map();      // name → {input, error}
  const formError = h("div", { class: "feedback", "aria-live": "polite", id: "form-error" });
  const readOnly = ctx.identity.scope === "read";
  const submitButton = h("button", { type: "submit", class: "primary", id: "submit-job", disabled: readOnly },
    "Submit job");

  const parse = (spec, raw) => (JOB_FIELDS.includes(spec) ? parseJobField(spec, raw) : parseField(spec, raw));
  const rawOf = (spec, input) => (spec.type === "bool" ? input.checked : input.value);

  function control(spec) {
    const id = `field-${spec.name}`;
    let input;
    if (spec.choices && !spec.type.startsWith("list[")) {
      input = h("select", { id, name: spec.name }, spec.choices.map((c) => h("option", { value: c }, c)));
    } else if (spec.type === "bool") {
      input = h("input", { id, name: spec.name, type: "checkbox" });
    } else {
      const numeric = spec.type === "int" || spec.type === "float";
      input = h("input", { id, name: spec.name, type: "text", autocomplete: "off",
        inputmode: numeric ? (spec.type === "int" ? "numeric" : "decimal") : undefined,
        placeholder: spec.nullable ? "none" : spec.type.startsWith("list[") ? "comma-separated" : "" });
    }
    const error = h("p", { class: "field-error", id: `error-${spec.name}`, hidden: true });
    const allowed = allowedText(spec);
    const rule = requirement(spec);
    const help = h("p", { class: "help" }, spec.help,
      allowed && (!spec.choices || spec.type.startsWith("list[")) ? ` — ${allowed}` : "",
      rule ? ` (only with ${rule.field} ${rule.one_of.join(" or ")})` : "");
    input.setAttribute("aria-describedby", `error-${spec.name} help-${spec.name}`);
    help.id = `help-${spec.name}`;
    const picked = spec.type === "bool" || (spec.choices && !spec.type.startsWith("list["));
    input.addEventListener(picked ? "change" : "input", () => {
      check(spec.name);
      if (ruleFields.has(spec.name)) applyRules();
    });
    inputs.set(spec.name, { input, error });
    return h("div", { class: `field field-${spec.type.replace(/\W/g, "")}`, dataset: { field: spec.name } },
      h("label", { for: id }, spec.name), input, help, error);
  }

  function setValue(name, value) {
    const { input } = inputs.get(name);
    if (byName.get(name).type === "bool") input.checked = Boolean(value);
    else input.value = display(byName.get(name), value);
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
    showError(name, parse(spec, rawOf(spec, input)).error);
  }

  // A field whose rule is not met (momentum for sdprun, valley_interval without a twin) is locked
  // to its default, which is what the API insists on. In spec order, so a chain of rules settles
  // in one pass: method unlocks reference, which unlocks valley_interval.
  function applyRules() {
    for (const spec of specs) {
      const rule = requirement(spec);
      if (!rule || !inputs.has(rule.field)) continue;
      const other = inputs.get(rule.field).input;
      const locked = other.disabled || !rule.one_of.includes(other.value);
      inputs.get(spec.name).input.disabled = locked;
      if (locked) setValue(spec.name, spec.default);
      check(spec.name);
    }
  }

  function applyPreset(preset) {
    for (const spec of specs) setValue(spec.name, spec.name in preset.values ? preset.values[spec.name] : spec.default);
    applyRules();
    for (const spec of specs) check(spec.name);
    formError.replaceChildren(notice(`Preset “${preset.label}”: ${preset.about}`));
  }

  async function submit(event) {
    event.preventDefault();
    formError.replaceChildren();
    const body = {};
    const bad = [];
    for (const spec of specs) {
      const { input } = inputs.get(spec.name);
      const parsed = parse(spec, rawOf(spec, input));
      showError(spec.name, parsed.error);
      if (parsed.error) bad.push(spec.name);
      else if (!input.disabled) body[spec.name] = parsed.value;
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

  const placed = new Set(SECTIONS.flatMap(([, names]) => names));
  const sections = [...SECTIONS, ["Other", specs.map((s) => s.name).filter((n) => !placed.has(n))]];
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "New job")),
    ...(readOnly ? [notice("Your token is read-only: submitting needs a submit or admin token.", "error")] : []),
    h("div", { class: "presets", role: "group", "aria-label": "presets" }, h("span", { class: "muted" }, "Presets:"),
      PRESETS.map((p) => h("button", { type: "button", id: `preset-${p.id}`, title: p.about,
        onclick: () => applyPreset(p) }, p.label))),
    h("form", { id: "job-form", class: "job-form", noValidate: true, onsubmit: submit },
      sections.filter(([, names]) => names.some((n) => byName.has(n))).map(([title, names]) =>
        h("fieldset", {}, h("legend", {}, title),
          names.filter((n) => byName.has(n)).map((n) => control(byName.get(n))))),
      formError,
      h("div", { class: "form-actions" }, submitButton)));
  applyPreset(PRESETS[0]);
  formError.replaceChildren();
}
