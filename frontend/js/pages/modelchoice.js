// The New job form's model choice: the built-in networks (the schema's x-builtin) plus every
// pushed model with a ready version (the config document's `models`), each labelled with its
// input shape. For a pushed model the
// form shows model_version and init (meaningless for a built-in, so hidden and left out then),
// and synthetic_shape and synthetic_classes follow the model, as c and mu follow a built-in's
// family: until the user edits them. The API still decides what fits; this only fills in.

const PUSHED_ONLY = ["model_version", "init"];

/** [{name, newest, versions}] from the config document's `models` (one entry per ready version:
 *  {name, version, input_shape, num_classes, has_weights, …}, what the API validates against),
 *  with `newest` the newest ready version and `versions` the ready numbers, newest first. */
export function readyModels(doc) {
  const byName = new Map();
  for (const v of doc.models || []) {
    if (!byName.has(v.name)) byName.set(v.name, []);
    byName.get(v.name).push(v);
  }
  return [...byName].map(([name, versions]) => {
    versions.sort((a, b) => b.version - a.version);
    return { name, newest: versions[0], versions: versions.map((v) => v.version) };
  }).sort((a, b) => a.name.localeCompare(b.name));
}

const shapeText = (shape) => (Array.isArray(shape) ? shape.join("×") : "?");
const classesOf = (v) => v.num_classes ?? null;

/** Adds the pushed models to the form's fields (`specs`, changed in place, before the form is
 *  built); returns show(inputs), which writes the chosen pushed model's facts under it and
 *  returns that model (null for a built-in). */
export function modelChoice(specs, pushed) {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const names = pushed.map((m) => m.name);
  const model = byName.get("model");
  if (model && model.choices) {
    model.choices = [...model.choices, ...names.filter((n) => !model.choices.includes(n))];
    model.labels = Object.fromEntries(pushed.map((m) =>
      [m.name, `${m.name} (pushed, ${shapeText(m.newest.input_shape)})`]));
  }
  for (const name of PUSHED_ONLY) {
    const spec = byName.get(name);
    if (spec && !spec.requires) spec.requires = { field: "model", one_of: names, hidden: true };
  }
  const follows = { synthetic_shape: (v) => v.input_shape, synthetic_classes: classesOf };
  for (const [name, pick] of Object.entries(follows)) {
    const spec = byName.get(name);
    if (!spec) continue;
    const values = pushed.map((m) => [m.name, pick(m.newest)]).filter(([, value]) => value !== null && value !== undefined);
    spec.modelDefaults = { ...(spec.modelDefaults || {}), ...Object.fromEntries(values) };
  }
  // c and mu of a pushed model: the spec's default for models that are not built in.
  for (const spec of specs) {
    if (spec.customModelDefault === null || !spec.modelDefaults) continue;
    spec.modelDefaults = { ...spec.modelDefaults,
      ...Object.fromEntries(names.map((n) => [n, spec.customModelDefault])) };
  }

  return function show(inputs) {
    if (!inputs.has("model")) return null;
    const { input, note } = inputs.get("model");
    const chosen = pushed.find((m) => m.name === input.value) || null;
    note.classList.add("info");
    note.hidden = !chosen;
    if (!chosen) return null;
    const v = chosen.newest;
    const classes = classesOf(v);
    if (inputs.has("model_version")) inputs.get("model_version").input.placeholder = `newest ready: ${v.version}`;
    note.textContent = `Pushed model: ${shapeText(v.input_shape)} inputs${classes ? `, ${classes} classes` : ""}, `
      + `${v.has_weights ? "trained weights" : "no weights (starts from random ones)"}; ready versions `
      + `${chosen.versions.join(", ")}. synthetic_shape and synthetic_classes follow it`
      + `${v.has_weights ? "; the job measures the weights' accuracy once, as the reference line" : ""}.`;
    return chosen;
  };
}
