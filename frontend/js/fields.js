// Reading and checking one form field against its spec from GET /config-spec
// ({name, type, nullable, default, help, choices, low, high, open_low, requires}).
// The checks mirror the API's, so most mistakes show at the field before a request; the API's
// own 422 answer is still shown where it points, for whatever these do not catch.

export function allowedText(spec) {
  if (spec.choices) return `one of ${spec.choices.join(", ")}`;
  if (spec.low === null || spec.low === undefined) return "";
  return `in ${spec.open_low ? "(" : "["}${spec.low}, ${spec.high}]`;
}

/** The text an input shows for a value. */
export function display(spec, value) {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.join(", ");
  return String(value);
}

function scalar(spec, text, kind) {
  if (kind === "str") return { value: text };
  const number = Number(text);
  if (text === "" || !Number.isFinite(number)) {
    return { error: `“${text}” is not a ${kind === "int" ? "whole number" : "number"}` };
  }
  if (kind === "int" && !Number.isInteger(number)) return { error: `${text} is not a whole number` };
  if (spec.low !== null && spec.low !== undefined) {
    const tooLow = spec.open_low ? number <= spec.low : number < spec.low;
    if (tooLow || number > spec.high) return { error: `${text} is out of range` };
  }
  return { value: number };
}

/** {value} or {error} for the raw input (a string, or a boolean for checkboxes). */
export function parseField(spec, raw) {
  if (spec.type === "bool") return { value: Boolean(raw) };
  const text = String(raw).trim();
  const isList = spec.type.startsWith("list[");
  if (spec.choices && !isList) {
    return spec.choices.includes(text) ? { value: text } : { error: `choose ${allowedText(spec)}` };
  }
  if (isList) {
    const kind = spec.type.slice(5, -1);
    const items = text.split(",").map((s) => s.trim()).filter(Boolean);
    if (items.length > 64) return { error: "at most 64 values" };
    if (spec.choices) {
      const bad = items.find((item) => !spec.choices.includes(item));
      return bad === undefined ? { value: items } : { error: `“${bad}” is not ${allowedText(spec)}` };
    }
    const values = [];
    for (const item of items) {
      const parsed = scalar(spec, item, kind);
      if (parsed.error) return { error: `${parsed.error}; each value must be ${allowedText(spec) || "valid"}` };
      values.push(parsed.value);
    }
    return { value: values };
  }
  if (text === "" && spec.nullable) return { value: null };
  if (text === "" && spec.type === "str") return { error: "required" };
  if (spec.type === "str" && text.length > 500) return { error: "at most 500 characters" };
  const parsed = scalar(spec, text, spec.type);
  if (parsed.error && allowedText(spec)) parsed.error += `; allowed ${allowedText(spec)}`;
  return parsed;
}

/** {field, one_of}: a non-default value of this field needs `field` in `one_of` (the API's rule). */
export function requirement(spec) {
  if (spec.requires) return spec.requires;
  return spec.only_for_method ? { field: "method", one_of: [spec.only_for_method] } : null;
}

/** The job's own fields, which are not engine config: a label and tags. */
export const JOB_FIELDS = [
  { name: "name", type: "label", default: "", help: "a label for lists (optional)" },
  { name: "tags", type: "tags", default: [], help: "comma-separated tags to filter by (optional)" },
];

export function parseJobField(spec, raw) {
  const text = String(raw).trim();
  if (spec.type === "label") {
    return text.length > 200 ? { error: "at most 200 characters" } : { value: text || null };
  }
  const tags = text.split(",").map((s) => s.trim()).filter(Boolean);
  if (tags.length > 20) return { error: "at most 20 tags" };
  if (tags.some((t) => t.length > 50)) return { error: "a tag has at most 50 characters" };
  return { value: tags };
}
