// Charts of the loss-valley analysis, built on charts.js's Chart (which alone calls Plotly):
// loss and accuracy along a path between the SGD and the pruned weights, the Hessian's top
// eigenvalues with the projection fractions, and the loss over the plane of w_init, w_SGD and
// w_pruned.

import { axis, Chart } from "./charts.js";

const LOSS = "train loss (nats)";

/** Paths over t ∈ [0, 1]: update([{name, t, train_loss, train_accuracy, test_accuracy}]). */
export function pathChart(el, { title }) {
  const chart = new Chart(el, title, {
    xaxis: axis("t (0 = SGD weights, 1 = pruned weights)"),
    yaxis: axis(LOSS, { fromZero: true }),
    yaxis2: { ...axis("accuracy (%)", { percent: true }), overlaying: "y", side: "right", showgrid: false },
    margin: { l: 72, r: 72, t: 28, b: 48 } });
  return {
    update(paths) {
      const traces = [];
      for (const p of paths) {
        traces.push({ type: "scatter", mode: "lines+markers", name: `${p.name}: train loss`, x: p.t, y: p.train_loss,
          meta: `${p.name}-loss`, marker: { size: 4 }, hovertemplate: "t=%{x:.3f}: loss %{y:.4g}<extra></extra>" });
        for (const [key, label, dash] of [["test_accuracy", "test accuracy", "dot"], ["train_accuracy", "train accuracy", "dash"]]) {
          if (!p[key]) continue;
          traces.push({ type: "scatter", mode: "lines", name: `${p.name}: ${label}`, x: p.t, y: p[key], yaxis: "y2",
            line: { dash }, hovertemplate: `t=%{x:.3f}: ${label} %{y:.2%}<extra></extra>` });
        }
      }
      return chart.draw(traces);
    },
    message: (text) => chart.message(text),
  };
}

/** update({eigenvalues, fraction, random_mean, k}): bars of λ₁…λ_k, the fractions in the title. */
export function spectrumChart(el) {
  const chart = new Chart(el, "Hessian top eigenvalues at the SGD weights", {
    xaxis: axis("eigenvalue rank"), yaxis: { ...axis("eigenvalue of the train-loss Hessian"), type: "log" } });
  return {
    update(hessian) {
      const fixed = (v) => (typeof v === "number" ? v.toFixed(4) : "–");
      chart.title.textContent = `Hessian top-${hessian.k} eigenvalues · ‖P_k Δ‖/‖Δ‖ = ${fixed(hessian.fraction)}`
        + ` (random directions: ${fixed(hessian.random_mean)})`;
      // Sorted largest first; a log axis cannot show eigenvalues ≤ 0, so those are listed only in hovers.
      const values = hessian.eigenvalues.filter((v) => v !== null).sort((a, b) => b - a);
      return chart.draw([{ type: "bar", name: "eigenvalue", x: values.map((_, i) => i + 1), y: values.map((v) => (v > 0 ? v : null)),
        meta: "spectrum", customdata: values, hovertemplate: "λ%{x} = %{customdata:.4g}<extra></extra>" }]);
    },
    message: (text) => chart.message(text),
  };
}

/** update({x, y, train_loss: [[…]], test_error, points: {init, reference, pruned}}). */
export function planeChart(el, { title, field = "train_loss" }) {
  // The engine's axes: origin w_SGD, x toward w_pruned, y toward w_init (Gram–Schmidt).
  const chart = new Chart(el, title, { xaxis: axis("toward w_pruned (from w_SGD)"),
    yaxis: { ...axis("toward w_init, orthogonalised"), scaleanchor: "x" }, height: 420, hovermode: "closest" });
  const names = { init: "w_init", reference: "w_SGD", pruned: "w_pruned" };
  return {
    update(plane) {
      const z = plane[field];
      const marks = Object.entries(plane.points || {});
      // Loss spans orders of magnitude; log10 contours show the valley floor.
      const shown = field === "train_loss" ? z.map((row) => row.map((v) => (v > 0 ? Math.log10(v) : null))) : z;
      return chart.draw([
        { type: "contour", x: plane.x, y: plane.y, z: shown, meta: `plane-${field}`, colorscale: "Viridis", ncontours: 24,
          colorbar: { title: { text: field === "train_loss" ? "log₁₀ train loss" : "test error", side: "right" },
            tickformat: field === "train_loss" ? undefined : ".0%" },
          hovertemplate: field === "train_loss" ? "log₁₀ loss %{z:.3f}<extra></extra>" : "test error %{z:.2%}<extra></extra>" },
        { type: "scatter", mode: "markers+text", name: "weights", x: marks.map(([, p]) => p[0]), y: marks.map(([, p]) => p[1]),
          text: marks.map(([name]) => names[name] || name), textposition: "top center",
          marker: { size: 11, color: "#d62728", line: { color: "#fff", width: 1 } }, hoverinfo: "text" },
      ]);
    },
    message: (text) => chart.message(text),
  };
}
