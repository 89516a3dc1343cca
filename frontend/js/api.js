// The only module that knows the API's URLs. Everything else calls these functions and gets
// plain data back, or an ApiError whose `kind` says what went wrong in words a page can show.

const BASE = "/api/v1";

export class ApiError extends Error {
  // kind: "unreachable" | "auth" (401) | "forbidden" (403) | "notfound" | "conflict" |
  //       "validation" (422, fields in `fields`) | "server" | "other"
  constructor(kind, message, { status = 0, fields = [] } = {}) {
    super(message);
    this.kind = kind;
    this.status = status;
    this.fields = fields;
  }
}

const KINDS = { 401: "auth", 403: "forbidden", 404: "notfound", 409: "conflict", 422: "validation" };

async function request(method, path, { body, params } = {}) {
  const url = BASE + path + query(params);
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body instanceof FormData) {
    init.body = body;  // the browser sets the multipart Content-Type with its boundary
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError("unreachable", "Cannot reach the Pruneboard API. Is `pruneboard up` running?");
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (response.ok) return data;
  throw errorFrom(response.status, data);
}

function errorFrom(status, data) {
  const detail = data && data.detail;
  const kind = KINDS[status] || (status >= 500 ? "server" : "other");
  if (status === 422 && Array.isArray(detail)) {
    // The API's shape is [{field, message, allowed}]; a stray FastAPI default [{loc, msg}] too.
    const fields = detail.map((d) => ({
      field: d.field || (d.loc || []).slice(1).join(".") || "body",
      message: d.message || d.msg || "invalid",
      allowed: d.allowed || null,
    }));
    return new ApiError(kind, fields.map((f) => `${f.field}: ${f.message}`).join("; "),
      { status, fields });
  }
  const text = typeof detail === "string" ? detail : `HTTP ${status}`;
  if (status === 502 || status === 503 || status === 504) {
    return new ApiError("unreachable", `The Pruneboard API is not answering (${text}).`, { status });
  }
  return new ApiError(kind, text, { status });
}

function query(params) {
  if (!params) return "";
  const pairs = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return pairs.length ? "?" + new URLSearchParams(pairs).toString() : "";
}

// -- session ----------------------------------------------------------------------------------
export const signIn = (token) => request("POST", "/session", { body: { token } });
export const whoAmI = () => request("GET", "/session");
export const signOut = () => request("DELETE", "/session");

// -- jobs -------------------------------------------------------------------------------------
export const listJobs = (filters = {}) => request("GET", "/jobs", { params: filters });
export const getJob = (id) => request("GET", `/jobs/${id}`);
export const submitJob = (body) => request("POST", "/jobs", { body });
export const cancelJob = (id) => request("POST", `/jobs/${id}/cancel`);
export const retryJob = (id) => request("POST", `/jobs/${id}/retry`);
export const deleteJob = (id) => request("DELETE", `/jobs/${id}`);
/** The New-job form's document: {schema (JSON Schema of the job body), sections, datasets:
 *  {builtin, folders}, presets: [{id, label, about, values, available, disabled_reason}],
 *  limits: {name: {value, help}}, analysis_schema}. Fetched anew each time: the folders and
 *  the presets' availability follow the live workers. */
export const configSpec = () => request("GET", "/config-spec");
/** {forecast, warnings} for a job body (as POST /jobs takes it): which layers the threshold
 *  alone forces to zero, at which step; forecast is null for a method without a threshold. */
export const forecastConfig = (body) => request("POST", "/config-spec/forecast", { body });
export const listWorkers = () => request("GET", "/workers");
export const jobLogs = (id, afterId = 0) =>
  request("GET", `/jobs/${id}/logs`, { params: { after_id: afterId, limit: 500 } });

/** {keys, series: {key: {steps, values}}, cursor}; the server downsamples to maxPoints. */
export const jobMetrics = (id, { keys, maxPoints = 1000 } = {}) =>
  request("GET", `/jobs/${id}/metrics`,
    { params: { keys: keys && keys.join(","), max_points: maxPoints } });

export const metricsCsvUrl = (id) => `${BASE}/jobs/${id}/metrics.csv`;

// -- pushed models ----------------------------------------------------------------------------
/** {models: [{name, owner, created_at, versions (a count), latest: version}]}; a version is
 *  {version, format, status (queued|running|ready|failed), error, input_shape, num_classes,
 *  has_weights, files, inspection (null until ready), created_at, finished_at}. */
export const listModels = () => request("GET", "/models");
/** {name, owner, created_at, versions: [version, newest first]}. */
export const getModel = (name) => request("GET", `/models/${encodeURIComponent(name)}`);
/** form: FormData with name, input_shape ("C,H,W"), num_classes?, and the files graph (+ weights)
 *  or onnx, each optionally with its <kind>_sha256; → the new version (status "queued"). */
export const pushModel = (form) => request("POST", "/models", { body: form });
export const deleteModel = (name) => request("DELETE", `/models/${encodeURIComponent(name)}`);

// -- loss-valley analyses and the exported small model -----------------------------------------
export const listAnalyses = (id) => request("GET", `/jobs/${id}/analyses`);
/** body: {kinds?, reference_job_id?, points?, hessian_k?, plane_grid?, …}; 422 names the field. */
export const startAnalysis = (id, body = {}) => request("POST", `/jobs/${id}/analyses`, { body });
/** [{name, format, sha256, bytes, url}]: `url` downloads the file (checked server-side). */
export const listArtifacts = (id) => request("GET", `/jobs/${id}/artifacts`);

// -- event streams ----------------------------------------------------------------------------
/**
 * Follow an SSE stream. `handlers` maps event names to callbacks taking parsed JSON, plus
 * `onState(state)` with "live" | "reconnecting" | "closed". EventSource reconnects by itself and
 * sends Last-Event-ID, so the API resends nothing twice and skips nothing. Returns close().
 */
function follow(path, handlers) {
  const source = new EventSource(BASE + path, { withCredentials: true });
  const state = handlers.onState || (() => {});
  source.onopen = () => state("live");
  // A CLOSED source after an error was refused (401, 404): EventSource will not retry it.
  source.onerror = () => state(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
  for (const [name, handler] of Object.entries(handlers)) {
    if (name === "onState") continue;
    source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  }
  return () => source.close();
}

/** A job's new metric points, status and log lines after `cursor` (from jobMetrics). */
export const followJob = (id, cursor, handlers) =>
  follow(`/jobs/${id}/events${query({ after: cursor })}`, handlers);

/** Status and progress changes of every job. */
export const followJobList = (handlers) => follow("/events", handlers);
