// The Models page's upload form: a graph JSON with optional safetensors weights, or an ONNX file,
// sent as POST /models takes it. The API checks everything (names, shapes, whitelists, hashes)
// and names the field of each refusal; this form only shows the answers where they point, so
// no rule is written twice. The SHA-256 of each file goes with it (where the browser can compute
// it), so a file that changed on the way is refused rather than stored.

import * as api from "../api.js";
import { errorBox, h, notice } from "../ui.js";

const FIELDS = [
  { name: "name", label: "name", help: "lower-case letters, digits, '.', '_' or '-'; pushing your own name again adds a version",
    attrs: { type: "text", autocomplete: "off", placeholder: "my-net" } },
  { name: "input_shape", label: "input shape", help: "C,H,W of one input sample (an ONNX file with a fixed input may leave it out)",
    attrs: { type: "text", autocomplete: "off", placeholder: "3,32,32" } },
  { name: "num_classes", label: "classes", help: "outputs of the model; left out, read from its forward pass",
    attrs: { type: "text", inputmode: "numeric", autocomplete: "off", placeholder: "from the model" } },
  { name: "graph", label: "graph JSON", help: "the architecture (pruneboard model push, or pruning.compact.graphjson.describe)",
    attrs: { type: "file", accept: ".json,application/json" } },
  { name: "weights", label: "weights (optional)", help: "trained weights as .safetensors; without them jobs start from random weights",
    attrs: { type: "file", accept: ".safetensors" } },
  { name: "onnx", label: "or an ONNX file", help: "instead of the graph and weights; a worker converts it",
    attrs: { type: "file", accept: ".onnx" } },
];
const FILES = ["graph", "weights", "onnx"];

/** The form element; onPushed(version, name) after the API accepted an upload; `status` (an
 *  element the caller keeps up to date) sits under the button. */
export function uploadForm({ readOnly, onPushed, status }) {
  const parts = new Map();
  const formError = h("div", { class: "feedback", id: "model-form-error", "aria-live": "polite" });
  const button = h("button", { type: "submit", class: "primary", id: "push-model", disabled: readOnly }, "Push model");

  const fields = FIELDS.map((f) => {
    const id = `model-field-${f.name}`;
    const input = h("input", { id, name: f.name, ...f.attrs, disabled: readOnly,
      "aria-describedby": `model-error-${f.name} model-help-${f.name}` });
    const error = h("p", { class: "field-error", id: `model-error-${f.name}`, hidden: true });
    input.addEventListener(f.attrs.type === "file" ? "change" : "input", () => mark(f.name, ""));
    parts.set(f.name, { input, error });
    return h("div", { class: `field field-upload-${f.name}`, dataset: { field: f.name } },
      h("label", { for: id }, f.label), input,
      h("p", { class: "help", id: `model-help-${f.name}` }, f.help), error);
  });

  function mark(name, message) {
    const { input, error } = parts.get(name);
    error.textContent = message;
    error.hidden = !message;
    input.setAttribute("aria-invalid", message ? "true" : "false");
  }

  async function body() {
    const form = new FormData();
    for (const name of ["name", "input_shape", "num_classes"]) {
      const value = parts.get(name).input.value.trim();
      if (value) form.append(name, value);
    }
    for (const kind of FILES) {
      const file = parts.get(kind).input.files[0];
      if (!file) continue;
      form.append(kind, file, file.name);
      const digest = await sha256(file);
      if (digest) form.append(`${kind}_sha256`, digest);
    }
    return form;
  }

  // A refusal names its field ("graph", "weights_sha256", "name: …" in a 409's text): shown there.
  function showRefusal(error) {
    const fieldOf = (field) => {
      const name = String(field).replace(/^body\./, "").replace(/_sha256$/, "");
      return parts.has(name) ? name : null;
    };
    if (error.kind === "validation") {
      const unplaced = [];
      for (const item of error.fields) {
        const name = fieldOf(item.field);
        if (name) mark(name, item.message);
        else unplaced.push(`${item.field}: ${item.message}`);
      }
      formError.replaceChildren(notice(unplaced.length ? unplaced.join("; ")
        : "The API refused the upload; see the messages at the fields.", "error"));
      const first = error.fields.map((f) => fieldOf(f.field)).find(Boolean);
      if (first) parts.get(first).input.focus();
      return;
    }
    const named = /^(\w+): /.exec(error.message || "");
    if (named && parts.has(named[1])) mark(named[1], error.message.slice(named[0].length));
    formError.replaceChildren(errorBox(error, "Not pushed: "));
  }

  async function submit(event) {
    event.preventDefault();
    for (const name of parts.keys()) mark(name, "");
    formError.replaceChildren();
    button.disabled = true;
    try {
      const name = parts.get("name").input.value.trim();
      const version = await api.pushModel(await body());
      for (const kind of FILES) parts.get(kind).input.value = "";
      onPushed(version, name);
    } catch (error) {
      showRefusal(error);
    } finally {
      button.disabled = readOnly;
    }
  }

  return h("section", { class: "card model-upload", id: "model-upload" },
    h("h2", {}, "Push a model"),
    h("p", { class: "help" }, "Nothing you push runs on the API: a worker rebuilds it from the whitelisted layers, ",
      "runs one forward pass and counts its parameters, FLOPs and prunable groups. Jobs can use it once it is ready."),
    ...(readOnly ? [notice("Your token is read-only: pushing needs a submit or admin token.", "error")] : []),
    h("form", { id: "model-form", class: "model-form", noValidate: true, onsubmit: submit },
      h("div", { class: "model-fields" }, fields), formError, h("div", { class: "form-actions" }, button)),
    status);
}

/** Hex SHA-256 of a file, or null where the browser has no WebCrypto (a plain-HTTP remote page). */
async function sha256(file) {
  if (!globalThis.crypto || !crypto.subtle) return null;
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
