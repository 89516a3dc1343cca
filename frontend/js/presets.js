// Starting points for the New job form. A preset sets only these fields; every other field
// goes back to the engine's default (from GET /config-spec), so presets never go stale when a
// field is added.

export const PRESETS = [
  {
    id: "digits",
    label: "Digits quick demo",
    about: "An MLP on scikit-learn's bundled 8×8 digits: runs in seconds on a CPU, no data files.",
    values: { name: "digits demo", model: "mlp", dataset: "digits", method: "sdprun",
      mlp_widths: [300, 100], epochs: 20, lr: 0.1, c: 0.015, mu: 0.6, log_interval: 10,
      reference: "sgd", valley_interval: 5 },
  },
  {
    // The sDprun paper's headline setting (VGG16 with BatchNorm on CIFAR-10, 93.97 % without
    // retraining): plain SGD-like step size, a small c and μ just above ½, the gRDA schedule.
    id: "vgg16-cifar10",
    label: "VGG16-BN / CIFAR-10 (paper)",
    about: "The sDprun paper's setting. Needs the CIFAR-10 python batches on the worker and a GPU.",
    values: { name: "vgg16-bn cifar10 sdprun", model: "vgg16-bn", dataset: "cifar10",
      method: "sdprun", epochs: 160, batch_size: 64, lr: 0.1, c: 0.005, mu: 0.51,
      schedule: "grda-paper", log_interval: 50 },
  },
  {
    id: "wrn-cifar100",
    label: "WRN-28-10 / CIFAR-100",
    about: "Wide ResNet on CIFAR-100 (top-5 accuracy is logged too). Needs the CIFAR-100 files and a GPU.",
    values: { name: "wrn-28-10 cifar100 sdprun", model: "wrn-28-10", dataset: "cifar100",
      method: "sdprun", epochs: 200, batch_size: 64, lr: 0.1, c: 0.001, mu: 0.51,
      schedule: "grda-paper", log_interval: 50 },
  },
];

// Sections of the form; a field the engine adds later lands in "Other".
export const SECTIONS = [
  ["Job", ["name", "tags", "model", "dataset", "method", "data_dir"]],
  ["Pruning and optimizer", ["lr", "c", "mu", "schedule", "lr_milestones", "lr_gamma", "momentum",
    "weight_decay"]],
  ["Run", ["epochs", "batch_size", "log_interval", "checkpoint_interval", "seed", "device", "amp"]],
  ["Baselines (l1-filter, spp, increg, gfs, eigendamage, pivot)", ["target", "target_ratio",
    "prune_start", "prune_end", "prune_interval", "prune_samples", "spp_increment",
    "increg_increment", "increg_target"]],
  ["Loss valley and small model", ["reference", "valley_interval", "analyses", "compact"]],
  ["Model and data details", ["mlp_widths", "exclude", "synthetic_shape", "synthetic_classes",
    "synthetic_size"]],
];
