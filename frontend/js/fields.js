// Form fields from a JSON Schema (pydantic's model_json_schema(), as GET /config-spec serves it):
// what input a property gets, its help, and checking a typed value against the property's own
// bounds. Nothing here knows a field's name or range: everything comes from the schema, so the
// checks are the API's own, and a field added to the model appears with its help and range.
// The API's 422 answer is still shown where it points, for the rules between fields.

/** A property with `$ref` / `allOf: [{$ref}]` replaced by its definition in `$defs`. */
function resolve(prop, defs) {
  if (!prop || typeof prop !== "object") return {};
  if (prop.$ref) {
    const target = defs[prop.$ref.split("/").pop()] || {};
    const { $ref, ...rest } = prop;
    return resolve({ ...target, ...rest }, defs);
  }
  if (Array.isArray(prop.allOf) && prop.allOf.length === 1) {
    const { allOf, ...rest } = prop;
    return resolve({ ...resolve(allOf[0], defs), ...rest }, defs);
  }
  return prop;
}

const isNull = (s) => s && (s.type === "null" || (Array.isArray(s.type) && s.type.length === 1 && s.type[0] === "null"));

/**
 * One field of the form from a property of `schema`: {name, kind, nullable, base, items, tuple,
 * default, help, section, requires, modelDefaults, choices}. kind: "enum" | "bool" | "int" | "float" | "str" |
 * "list" | "tuple"; `base` is the non-null part of the property (where its bounds are); `choices`
 * the options of an enum.
 */
export function fieldOf(name, prop, schema = {}) {
  const defs = schema.$defs || schema.definitions || {};
  const full = resolve(prop, defs);
  let base = full;
  let nullable = false;
  if (Array.isArray(full.anyOf) || Array.isArray(full.oneOf)) {
    const options = (full.anyOf || full.oneOf).map((o) => resolve(o, defs));
    nullable = options.some(isNull);
    const rest = options.filter((o) => !isNull(o));
    base = rest.length ? rest[0] : {};
  } else if (Array.isArray(full.type) && full.type.includes("null")) {
    nullable = true;
    base = { ...full, type: full.type.filter((t) => t !== "null")[0] };
  }
  // x-builtin: a name field (model, dataset) whose choices are the built-in names, to which the
  // service adds its own (pushed models); any name of the allowed form passes the field's check.
  const builtin = Array.isArray(full["x-builtin"]) ? full["x-builtin"] : null;
  return {
    name,
    kind: builtin ? "enum" : kindOf(base),
    choices: choicesOf(base) || builtin,
    nullable,
    base,
    items: base.items ? resolve(base.items, defs) : null,
    tuple: Array.isArray(base.prefixItems) ? base.prefixItems.map((p) => resolve(p, defs)) : null,
    default: full.default === undefined ? (nullable ? null : undefined) : full.default,
    title: full.title || name,
    help: full.description || "",
    section: full["x-section"] || null,
    requires: full["x-requires"] || null,
    // {model: value}: the value a job of that model gets when it leaves the field out.
    modelDefaults: full["x-model-defaults"] || null,
    // The value a pushed model's job gets when it leaves the field out (c, mu).
    customModelDefault: full["x-custom-model-default"] ?? null,
  };
}

function kindOf(s) {
  if (Array.isArray(s.enum) || "const" in s) return "enum";
  if (s.type === "boolean") return "bool";
  if (s.type === "integer") return "int";
  if (s.type === "number") return "float";
  if (s.type === "array") return Array.isArray(s.prefixItems) ? "tuple" : "list";
  return "str";
}

/** The fields of every property of `schema`, in the schema's order. */
export function fieldsOf(schema) {
  return Object.entries(schema.properties || {}).map(([name, prop]) => fieldOf(name, prop, schema));
}

/** The allowed values of an enum property (a `const` is an enum of one). */
export const choicesOf = (s) => (Array.isArray(s.enum) ? s.enum : "const" in s ? [s.const] : null);

/** A scalar schema's allowed values in words: "one of a, b", "in (0, 1]", "at least 1". */
export function rangeText(s) {
  if (!s) return "";
  const choices = choicesOf(s);
  if (choices) return `one of ${choices.join(", ")}`;
  const low = s.exclusiveMinimum ?? s.minimum;
  const high = s.exclusiveMaximum ?? s.maximum;
  const hasLow = low !== undefined && low !== null;
  const hasHigh = high !== undefined && high !== null;
  if (hasLow && hasHigh) {
    return `in ${"exclusiveMinimum" in s ? "(" : "["}${low}, ${high}${"exclusiveMaximum" in s ? ")" : "]"}`;
  }
  if (hasLow) return `${"exclusiveMinimum" in s ? "above" : "at least"} ${low}`;
  if (hasHigh) return `${"exclusiveMaximum" in s ? "below" : "at most"} ${high}`;
  if (s.maxLength !== undefined) return `at most ${s.maxLength} characters`;
  return "";
}

/** The field's allowed values in words, for its help line. */
export function allowedText(field) {
  if (field.kind === "list") {
    const inner = rangeText(field.items);
    const count = field.base.maxItems !== undefined ? `at most ${field.base.maxItems} values` : "";
    return [inner && `each ${inner}`, count].filter(Boolean).join("; ");
  }
  if (field.kind === "tuple") {
    const ranges = [...new Set(field.tuple.map(rangeText))];
    const inner = ranges.length === 1 ? ranges[0] : ranges.join(" / ");
    return `${field.tuple.length} values${inner ? `, each ${inner}` : ""}`;
  }
  if (field.kind === "bool" || field.kind === "enum") return "";
  return rangeText(field.base);
}

/** The text an input shows for a value. */
export function display(field, value) {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.join(", ");
  return String(value);
}

const describeNumber = (kind) => (kind === "int" ? "whole number" : "number");

/** {value} or {error} for one scalar's text, checked against scalar schema `s`. */
function scalar(s, text) {
  const choices = choicesOf(s);
  if (choices) {
    const hit = choices.find((c) => String(c) === text);
    return hit === undefined ? { error: `“${text}” is not one of ${choices.join(", ")}` } : { value: hit };
  }
  const kind = kindOf(s);
  if (kind === "bool") {
    if (text === "true" || text === "false") return { value: text === "true" };
    return { error: `“${text}” is not true or false` };
  }
  if (kind === "int" || kind === "float") {
    // Decimal only, as the API reads JSON numbers: Number() would also take 0x10 or 0b1.
    const form = kind === "int" ? /^[-+]?\d+$/ : /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
    const number = Number(text);
    if (!form.test(text) || !Number.isFinite(number)) return { error: `“${text}” is not a ${describeNumber(kind)}` };
    if (kind === "int" && !Number.isInteger(number)) return { error: `${text} is not a whole number` };
    const out = (s.minimum !== undefined && number < s.minimum)
      || (s.exclusiveMinimum !== undefined && number <= s.exclusiveMinimum)
      || (s.maximum !== undefined && number > s.maximum)
      || (s.exclusiveMaximum !== undefined && number >= s.exclusiveMaximum);
    if (out) return { error: `${text} is out of range` };
    if (s.multipleOf && Math.abs(number / s.multipleOf - Math.round(number / s.multipleOf)) > 1e-9) {
      return { error: `${text} is not a multiple of ${s.multipleOf}` };
    }
    return { value: number };
  }
  if (s.minLength !== undefined && text.length < s.minLength) {
    return { error: s.minLength === 1 ? "required" : `at least ${s.minLength} characters` };
  }
  if (s.maxLength !== undefined && text.length > s.maxLength) return { error: `at most ${s.maxLength} characters` };
  if (s.pattern) {
    let re = null;
    try { re = new RegExp(s.pattern, "u"); } catch { re = null; }
    if (re && !re.test(text)) return { error: `“${text}” is not of the allowed form` };
  }
  return { value: text };
}

function splitList(text) {
  return text.split(",").map((part) => part.trim()).filter(Boolean);
}

/** {value} or {error} for the raw input (a string, or a boolean for checkboxes). */
export function parseField(field, raw) {
  if (field.kind === "bool") return { value: Boolean(raw) };
  const text = String(raw ?? "").trim();
  if (text === "" && field.nullable) return { value: null };
  if (field.kind === "list") {
    const items = splitList(text);
    const { minItems, maxItems } = field.base;
    if (maxItems !== undefined && items.length > maxItems) return { error: `at most ${maxItems} values, got ${items.length}` };
    if (minItems !== undefined && items.length < minItems) return { error: `at least ${minItems} values, got ${items.length}` };
    const values = [];
    for (const item of items) {
      const parsed = scalar(field.items || {}, item);
      const allowed = rangeText(field.items);
      if (parsed.error) return { error: `${parsed.error}; each value must be ${allowed || "valid"}` };
      values.push(parsed.value);
    }
    return { value: values };
  }
  if (field.kind === "tuple") {
    const items = splitList(text);
    const n = field.tuple.length;
    if (items.length !== n) return { error: `needs exactly ${n} comma-separated values, got ${items.length}` };
    const values = [];
    for (const [i, item] of items.entries()) {
      const parsed = scalar(field.tuple[i], item);
      if (parsed.error) return { error: `${parsed.error}; value ${i + 1} must be ${rangeText(field.tuple[i]) || "valid"}` };
      values.push(parsed.value);
    }
    return { value: values };
  }
  if (field.kind === "enum") {
    const parsed = scalar(field.base, text);
    const options = choicesOf(field.base) ? rangeText(field.base) : `one of ${(field.choices || []).join(", ")}`;
    return parsed.error ? { error: `choose ${options}` } : parsed;
  }
  const parsed = scalar(field.base, text);
  const numeric = field.kind === "int" || field.kind === "float";
  if (parsed.error && numeric && rangeText(field.base)) parsed.error += `; allowed ${rangeText(field.base)}`;
  return parsed;
}

/** {field, one_of}: a non-default value of this field needs `field` in `one_of` (the API's rule). */
export const requirement = (field) => field.requires || null;
