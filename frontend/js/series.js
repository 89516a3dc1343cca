// What each metric series is, in words and units: shared by the job page, Compare and the
// jobs list, so a series reads the same everywhere. Values stay as the API sends them
// (fractions stay fractions); `percent` makes the axis show them as %.

export const STEP_AXIS = "step (minibatches)";
export const LAYER_PREFIX = "layer_group_sparsity/";
// The live valley check: train loss at t on the line from the SGD twin (0) to the run (1).
export const VALLEY_PREFIX = "valley_path/";

export const SERIES = {
  train_loss: { label: "train loss", axis: "cross-entropy loss (nats)" },
  test_loss: { label: "test loss", axis: "cross-entropy loss (nats)" },
  test_accuracy: { label: "test accuracy (top-1)", axis: "test accuracy (%)", percent: true },
  test_top5: { label: "test accuracy (top-5)", axis: "test accuracy (%)", percent: true },
  weight_sparsity: { label: "weight sparsity", axis: "sparsity (% zero)", percent: true },
  group_sparsity: { label: "group sparsity", axis: "sparsity (% zero)", percent: true },
  remaining_flops: { label: "remaining FLOPs", axis: "remaining (% of dense)", percent: true },
  remaining_params: { label: "remaining params", axis: "remaining (% of dense)", percent: true },
  threshold: { label: "threshold λₙ", axis: "λₙ (weight magnitude)" },
  lr: { label: "learning rate γ", axis: "γ (lr per step)" },
  norm_ratio: { label: "norm ratio ‖w‖₂/‖w‖₁", axis: "‖w‖₂ / ‖w‖₁ (ratio)" },
  reference_train_loss: { label: "SGD twin train loss", axis: "cross-entropy loss (nats)" },
  reference_test_loss: { label: "SGD twin test loss", axis: "cross-entropy loss (nats)" },
  reference_test_accuracy: { label: "SGD twin test accuracy", axis: "test accuracy (%)", percent: true },
  // A pushed model's own weights, measured once before training (step 0): drawn across the chart
  // as a dashed reference line, the number pruning should hold.
  pretrained_test_accuracy: { label: "unpruned pushed model: test accuracy", axis: "test accuracy (%)", percent: true, reference: true },
  pretrained_test_loss: { label: "unpruned pushed model: test loss", axis: "cross-entropy loss (nats)", reference: true },
  // Height of the train loss above the chord between the line's ends (pruning.valley.evaluation).
  valley_barrier: { label: "barrier above the chord, line twin → run", axis: "loss barrier (nats)" },
};

export function describe(key) {
  if (SERIES[key]) return SERIES[key];
  if (key.startsWith(LAYER_PREFIX)) {
    return { label: `group sparsity of ${key.slice(LAYER_PREFIX.length)}`,
      axis: "group sparsity (% zero)", percent: true };
  }
  return { label: key, axis: `${key} (value)` };
}

/** The charts of a job page: which series share an axis, and how it is titled. `when(config)`
 *  keeps a chart off the page of jobs that cannot have it. */
export const JOB_CHARTS = [
  { id: "loss", title: "Train and test loss", keys: ["train_loss", "test_loss", "reference_train_loss",
    "reference_test_loss", "pretrained_test_loss"] },
  { id: "accuracy", title: "Test accuracy", keys: ["test_accuracy", "test_top5", "reference_test_accuracy",
    "pretrained_test_accuracy"] },
  { id: "sparsity", title: "Weight and group sparsity", keys: ["weight_sparsity", "group_sparsity"] },
  { id: "remaining", title: "Remaining FLOPs and params", keys: ["remaining_flops", "remaining_params"] },
  // Two scales on one chart: λₙ grows while γ follows its schedule.
  { id: "threshold", title: "Threshold λₙ and learning rate γ", keys: ["threshold", "lr"], secondAxis: "lr",
    fromZero: true },
  { id: "valley-barrier", title: "Live valley check: loss barrier between the SGD twin and the run",
    keys: ["valley_barrier"], when: (config) => config.valley_interval > 0 },
];
