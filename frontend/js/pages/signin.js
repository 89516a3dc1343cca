// Sign in with a token: the API answers with an HttpOnly cookie, so the token never sits in
// JavaScript-readable storage, and EventSource (which cannot send headers) is authenticated too.

import * as api from "../api.js";
import { errorBox, h } from "../ui.js";

export async function mount(root, ctx) {
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off",
    required: true, placeholder: "pb_…", spellcheck: false });
  const feedback = h("div", { class: "feedback", "aria-live": "polite" });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");

  async function submit(event) {
    event.preventDefault();
    feedback.replaceChildren();
    button.disabled = true;
    try {
      const identity = await api.signIn(input.value.trim());
      ctx.onSignedIn(identity);
      ctx.navigate(ctx.query.get("next") || "/jobs");
    } catch (error) {
      if (error.kind === "auth") {
        error.message = `That token was refused (${error.message}). Check for a typo, or ask ` +
          "an admin for a new one (`pruneboard token create`).";
        error.kind = "token";
      }
      feedback.append(errorBox(error));
      input.select();
    } finally {
      button.disabled = false;
    }
  }

  root.append(
    h("section", { class: "signin card" },
      h("h1", {}, "Sign in to Pruneboard"),
      h("form", { onsubmit: submit, id: "signin-form" },
        h("label", { for: "token" }, "API token"),
        input,
        h("p", { class: "help" }, "`pruneboard up` prints the admin token and keeps it in ",
          h("code", {}, "<data-dir>/admin-token"), "; `pruneboard token create --name NAME ",
          "--scope read|submit|admin` makes more."),
        button),
      feedback));
  input.focus();
}
