// A job's series in the browser: loaded once (downsampled by the API), then grown from the event
// stream. Arrays are appended to in place, so charts redraw without copying.

import { LAYER_PREFIX, VALLEY_PREFIX } from "./series.js";

// A live series longer than this is thinned to about half, keeping each bucket's min and max,
// so a job that runs for days never makes the page slow (the API's first answer has ≤ 1,000).
const LIVE_LIMIT = 4000;
const THINNED = 1000;

export class SeriesStore {
  constructor() {
    this.series = new Map();
  }

  /** Replace everything with the API's {key: {steps, values}}. */
  load(series) {
    this.series = new Map(Object.entries(series).map(([k, s]) => [k, { steps: s.steps, values: s.values }]));
  }

  /** Add [{key, step, value}] from the stream; returns the keys that changed. A step at or
   *  before the series' last one is skipped: the stream resumes from the cursor taken before the
   *  first read, so the overlap arrives twice. */
  add(points) {
    const changed = new Set();
    for (const { key, step, value } of points) {
      const s = this.get(key);
      if (s.steps.length && step <= s.steps[s.steps.length - 1]) continue;
      s.steps.push(step);
      s.values.push(value);
      changed.add(key);
    }
    for (const key of changed) {
      const s = this.series.get(key);
      if (s.steps.length > LIVE_LIMIT) thin(s, THINNED);
    }
    return changed;
  }

  get(key) {
    if (!this.series.has(key)) this.series.set(key, { steps: [], values: [] });
    return this.series.get(key);
  }

  has(key) {
    return this.series.has(key) && this.series.get(key).steps.length > 0;
  }

  layerKeys() {
    return [...this.series.keys()].filter((k) => k.startsWith(LAYER_PREFIX) && this.has(k))
      .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  }
}

/** The newest live valley check as a path {t, train_loss, step}: each t is its own series
 *  (valley_path/0.30), whose last point is the newest check; null before the first check. */
export function latestValleyLine(store) {
  const keys = [...store.series.keys()].filter((k) => k.startsWith(VALLEY_PREFIX) && store.has(k));
  if (!keys.length) return null;
  const rows = keys.map((k) => {
    const s = store.get(k);
    return { t: Number(k.slice(VALLEY_PREFIX.length)), loss: s.values[s.values.length - 1], step: s.steps[s.steps.length - 1] };
  }).sort((a, b) => a.t - b.t);
  return { t: rows.map((r) => r.t), train_loss: rows.map((r) => r.loss), step: Math.max(...rows.map((r) => r.step)) };
}

/** In place: keep the first and last point and the min and max of each of `buckets` buckets. */
function thin(s, buckets) {
  const n = s.steps.length;
  const keep = new Set([0, n - 1]);
  const width = n / buckets;
  for (let b = 0; b < buckets; b++) {
    let lo = -1;
    let hi = -1;
    for (let i = Math.floor(b * width); i < Math.min(n, Math.floor((b + 1) * width)); i++) {
      const v = s.values[i];
      if (v === null) continue;
      if (lo < 0 || v < s.values[lo]) lo = i;
      if (hi < 0 || v > s.values[hi]) hi = i;
    }
    if (lo >= 0) keep.add(lo).add(hi);
  }
  const order = [...keep].sort((a, b) => a - b);
  const steps = order.map((i) => s.steps[i]);
  const values = order.map((i) => s.values[i]);
  s.steps.splice(0, n, ...steps);
  s.values.splice(0, n, ...values);
}

/**
 * The per-layer heat map: one row per layer, columns at (at most `columns`) steps of the
 * longest layer series; each cell holds the layer's latest value at or before that step.
 */
export function heatmapGrid(store, columns = 200) {
  const keys = store.layerKeys();
  if (!keys.length) return null;
  const longest = keys.map((k) => store.get(k)).reduce((a, b) => (b.steps.length > a.steps.length ? b : a));
  const stride = Math.max(1, Math.ceil(longest.steps.length / columns));
  const steps = longest.steps.filter((_, i) => i % stride === 0 || i === longest.steps.length - 1);
  const z = keys.map((key) => {
    const s = store.get(key);
    const row = [];
    let j = -1;
    for (const step of steps) {
      while (j + 1 < s.steps.length && s.steps[j + 1] <= step) j++;
      row.push(j >= 0 ? s.values[j] : null);
    }
    return row;
  });
  return { layers: keys.map((k) => k.slice(LAYER_PREFIX.length)), steps, z };
}
