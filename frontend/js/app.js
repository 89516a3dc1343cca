// The shell: who is signed in, the navigation, and hash routing to one page module at a time.
// Each page's mount(root, ctx) returns a cleanup that closes its event streams and timers.

import * as api from "./api.js";
import { errorBox, h } from "./ui.js";
import * as signin from "./pages/signin.js";
import * as jobs from "./pages/jobs.js";
import * as newJob from "./pages/newjob.js";
import * as job from "./pages/job.js";
import * as compare from "./pages/compare.js";
import * as workers from "./pages/workers.js";
import * as models from "./pages/models.js";

const ROUTES = [
  [/^\/signin$/, signin, "Sign in"],
  [/^\/jobs$/, jobs, "Jobs"],
  [/^\/new$/, newJob, "New job"],
  [/^\/jobs\/(\d+)$/, job, "Job"],
  [/^\/compare$/, compare, "Compare"],
  [/^\/workers$/, workers, "Workers"],
  [/^\/models(?:\/([^/]+))?$/, models, "Models"],
];

const state = { identity: null, cleanup: null };
const main = document.getElementById("main");
const who = document.getElementById("who");

export function navigate(path) {
  location.hash = "#" + path;
}

function parseHash() {
  const [path, search] = (location.hash.slice(1) || "/jobs").split("?");
  return { path: path || "/jobs", query: new URLSearchParams(search || "") };
}

async function identify() {
  try {
    state.identity = await api.whoAmI();
  } catch (error) {
    state.identity = null;
    if (error.kind !== "auth") return error;  // unreachable or broken: say so, do not sign out
  }
  return null;
}

function showIdentity() {
  const signedIn = Boolean(state.identity);
  document.body.classList.toggle("signed-in", signedIn);
  who.replaceChildren(signedIn
    ? h("span", { class: "identity" }, `${state.identity.name} · ${state.identity.scope}`,
      h("button", { type: "button", class: "link", id: "sign-out", onclick: signOut }, "Sign out"))
    : h("a", { href: "#/signin" }, "Sign in"));
}

async function signOut() {
  await api.signOut().catch(() => {});
  state.identity = null;
  showIdentity();
  navigate("/signin");
}

async function route() {
  if (state.cleanup) state.cleanup();
  state.cleanup = null;
  const { path, query } = parseHash();
  const match = ROUTES.map(([pattern, page, title]) => [path.match(pattern), page, title])
    .find(([m]) => m);
  if (!match) return navigate("/jobs");
  const [groups, page, title] = match;
  if (page !== signin && !state.identity) {
    const problem = await identify();
    showIdentity();
    if (problem) {
      main.replaceChildren(h("h1", {}, title), errorBox(problem));
      return;
    }
    if (!state.identity) return navigate(`/signin?next=${encodeURIComponent(path)}`);
  }
  document.title = `${title} · Pruneboard`;
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", path.startsWith(link.getAttribute("href").slice(1)));
  }
  main.replaceChildren();
  const ctx = { identity: state.identity, params: groups.slice(1), query, navigate,
    onSignedIn(identity) { state.identity = identity; showIdentity(); } };
  try {
    state.cleanup = (await page.mount(main, ctx)) || null;
  } catch (error) {
    // A 401 mid-session (token revoked): back to sign-in; anything else shown where it happened.
    if (error.kind === "auth") {
      state.identity = null;
      showIdentity();
      return navigate(`/signin?next=${encodeURIComponent(path)}`);
    }
    main.append(errorBox(error));
  }
}

window.addEventListener("hashchange", route);
identify().then((problem) => {
  showIdentity();
  if (problem && !location.hash.startsWith("#/signin")) {
    main.replaceChildren(errorBox(problem));
    return;
  }
  route();
});
