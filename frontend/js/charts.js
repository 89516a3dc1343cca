// The only module that touches Plotly. Pages hand it plain arrays; it draws them with
// Plotly.react and a fixed uirevision, so a live update never resets the user's zoom, and it
// shows a sentence instead of an empty plot when there is nothing to draw.

import { describe, STEP_AXIS } from "./series.js";

const UIREVISION = "pruneboard";   // constant: Plotly keeps zoom/pan/legend state across reacts
// Below this many points in one chart, SVG draws faster than WebGL (no GL context to start:
// measured 1.2 s against 2.5 s for a 10-series job page) and crisper; above it WebGL wins.
const WEBGL_ABOVE = 5000;
const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

// plotly.min.js (4.6 MB) loads async: the page fetches its data while the browser compiles it.
const plotlyLoaded = new Promise((resolve) => {
  const script = document.getElementById("plotly");
  if (window.Plotly || !script) return resolve(window.Plotly || null);
  script.addEventListener("load", () => resolve(window.Plotly));
  script.addEventListener("error", () => resolve(null));
});

/** Tests set window.__pbTrace = {points: [], marks: {}} before the page loads; charts then log
 *  when each series' newest step is on screen. Without it, nothing is recorded. */
function trace() {
  return window.__pbTrace;
}

export function mark(name) {
  if (trace()) trace().marks[name] = performance.now();
}

export class Chart {
  // The title is HTML, not Plotly's: the legend gets the top row, clear of the x-axis title,
  // and the title stays readable when the chart shows a message instead.
  constructor(el, title, layout) {
    el.classList.add("chart");
    el.replaceChildren();
    this.title = el.appendChild(document.createElement("h3"));
    this.title.className = "chart-title";
    this.title.textContent = title;
    this.plot = el.appendChild(document.createElement("div"));
    this.plot.className = "chart-plot";
    this.note = el.appendChild(document.createElement("p"));
    this.note.className = "chart-message";
    this.layout = { uirevision: UIREVISION, datarevision: 0, autosize: true, height: 290,
      // Fixed margins, not automargin: automargin measures the labels and lays the chart out
      // twice, which doubled the first render of a job page (0.5 s against 1.1 s here).
      margin: { l: 72, r: 24, t: 28, b: 48 },
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", bgcolor: "rgba(0,0,0,0)" },
      font: { size: 12 }, ...layout };
    this.data = [];
    this.pending = null;
    this.drawn = false;
  }

  /** Draw `data` (Plotly traces) on the next frame; several calls per frame draw once. */
  draw(data) {
    this.data = data;
    this.note.hidden = true;
    this.plot.hidden = false;
    if (!this.pending) {
      this.pending = new Promise((resolve) => requestAnimationFrame(() => {
        this.pending = null;
        resolve(this.render());
      }));
    }
    return this.pending;
  }

  async render() {
    const plotly = await plotlyLoaded;
    if (!plotly) return this.message("The chart library did not load (/vendor/plotly.min.js): reload the page.");
    // Arrays are appended to in place, so Plotly needs the bumped datarevision to look again.
    this.layout.datarevision += 1;
    // The box keeps the chart's height: Plotly's responsive resize drops layout.height and
    // then fills its container, which would otherwise collapse to nothing.
    this.plot.style.height = `${this.layout.height}px`;
    await plotly.react(this.plot, this.data, this.layout, CONFIG);
    this.drawn = true;
    if (trace()) {
      const now = Date.now();
      for (const t of this.data) {
        if (t.meta && t.x.length) trace().points.push([t.meta, t.x[t.x.length - 1], now]);
      }
    }
  }

  message(text) {
    this.note.textContent = text;
    this.note.hidden = false;
    this.plot.hidden = true;
    if (this.drawn) window.Plotly.purge(this.plot);  // purge also drops event handlers
    this.drawn = false;
    this.bound = false;
  }
}

// Percent axes hold fractions in [0, 1]: autorange stays inside (a constant 0 or 1 would
// otherwise span −100 %…100 % or 0…200 %), and "~" drops zeros (20 %, but 95.83 %).
export function axis(title, { percent = false, fromZero = false } = {}) {
  return { title: { text: title }, tickformat: percent ? ".2~%" : undefined,
    autorangeoptions: percent ? { clipmin: 0, clipmax: 1.05 } : undefined,
    rangemode: fromZero ? "tozero" : undefined, automargin: false, zeroline: false };
}

/**
 * A chart of series over steps. options: {title, yTitle, yPercent, y2Title, y2Percent, fromZero}.
 * update(lines) takes [{key, name, steps, values, secondAxis?, percent?}] (arrays not copied).
 */
export function lineChart(el, options) {
  const fromZero = Boolean(options.fromZero);
  const layout = { xaxis: axis(STEP_AXIS), yaxis: axis(options.yTitle, { percent: options.yPercent, fromZero }) };
  if (options.y2Title) {
    layout.yaxis2 = { ...axis(options.y2Title, { percent: options.y2Percent, fromZero }),
      overlaying: "y", side: "right", showgrid: false };
    layout.margin = { l: 72, r: 72, t: 28, b: 48 };
  }
  const chart = new Chart(el, options.title, layout);
  return {
    // `labels` ({title, yTitle, yPercent}) retitles the chart when it shows another series; the
    // y axis then gets its own uirevision, since a zoom on one series means nothing on another.
    update(lines, labels) {
      if (labels) {
        chart.title.textContent = labels.title;
        chart.layout.yaxis = { ...axis(labels.yTitle, { percent: labels.yPercent }), uirevision: labels.yTitle };
      }
      const total = lines.reduce((n, l) => n + l.steps.length, 0);
      const type = total > WEBGL_ABOVE ? "scattergl" : "scatter";
      const span = stepSpan(lines.filter((l) => !isReference(l)));
      return chart.draw(lines.map((l) => (isReference(l) ? referenceLine(l, span) : {
        type, mode: l.steps.length > 1 ? "lines" : "markers", name: l.name, meta: l.key,
        x: l.steps, y: l.values, yaxis: l.secondAxis ? "y2" : "y",
        hovertemplate: `%{y:${l.percent ? ".2%" : ".4g"}} at step %{x}<extra>${l.name}</extra>`,
      })));
    },
    message: (text) => chart.message(text),
  };
}

// A reference series (one value, e.g. the unpruned model's accuracy at step 0) is a flat
// dashed line across every step the other series cover.
const isReference = (line) => line.reference ?? Boolean(describe(line.key || "").reference);

function stepSpan(lines) {
  const steps = lines.flatMap((l) => (l.steps.length ? [l.steps[0], l.steps[l.steps.length - 1]] : []));
  return steps.length ? [Math.min(0, ...steps), Math.max(...steps)] : null;
}

function referenceLine(line, span) {
  const value = line.values[line.values.length - 1];
  const step = line.steps[line.steps.length - 1];
  const [x0, x1] = span && span[1] > span[0] ? span : [step, step + 1];
  return { type: "scatter", mode: "lines", name: line.name, meta: line.key, x: [x0, x1], y: [value, value],
    yaxis: line.secondAxis ? "y2" : "y", line: { dash: "dash", width: 1.5, color: "#555" },
    hovertemplate: `%{y:${line.percent ? ".2%" : ".4g"}}<extra>${line.name}</extra>` };
}

/** Per-layer group sparsity over steps: update({layers, steps, z}) with z[layer][column]. */
export function heatmap(el, { title }) {
  // automargin here: layer names vary in length, and one chart can afford the second layout pass.
  const chart = new Chart(el, title, { xaxis: axis(STEP_AXIS), yaxis: { ...axis("layer"), autorange: "reversed", automargin: true },
    margin: { l: 120, r: 24, t: 16, b: 48 } });
  return {
    update({ layers, steps, z }) {
      chart.layout.height = Math.max(300, 60 + 18 * layers.length);
      return chart.draw([{ type: "heatmap", x: steps, y: layers, z, zmin: 0, zmax: 1,
        colorscale: "Viridis", meta: "heatmap",
        colorbar: { title: { text: "group sparsity (%)", side: "right" }, tickformat: ".0%" },
        hovertemplate: "%{y} at step %{x}: %{z:.1%}<extra></extra>" }]);
    },
    message: (text) => chart.message(text),
  };
}

/**
 * Final accuracy against FLOPs reduction, one point per job, with the Pareto front (no other
 * job is both more accurate and cheaper) as a step line. onPick(id) when a point is clicked.
 */
export function paretoScatter(el, { onPick } = {}) {
  const chart = new Chart(el, "Final test accuracy against FLOPs reduction", {
    xaxis: axis("FLOPs reduction (% of dense FLOPs removed)", { percent: true }),
    yaxis: axis("final test accuracy (%)", { percent: true }), hovermode: "closest" });
  return {
    async update({ points, front }) {
      await chart.draw([
        { type: "scatter", mode: "lines", name: "Pareto front", x: front.map((p) => p.x),
          y: front.map((p) => p.y), line: { shape: "vh", dash: "dot", color: "#888" }, hoverinfo: "skip" },
        { type: "scatter", mode: "markers+text", name: "jobs", x: points.map((p) => p.x),
          y: points.map((p) => p.y), text: points.map((p) => p.label), customdata: points.map((p) => p.id),
          textposition: "top center", cliponaxis: false, marker: { size: 10, color: points.map((p) => (p.onFront ? "#d62728" : "#1f77b4")) },
          hovertemplate: "%{text}<br>accuracy %{y:.2%}<br>FLOPs removed %{x:.1%}<extra></extra>" },
      ]);
      if (onPick && !chart.bound) {
        chart.bound = true;
        chart.plot.on("plotly_click", (e) => e.points[0] && e.points[0].customdata && onPick(e.points[0].customdata));
      }
    },
    message: (text) => chart.message(text),
  };
}
