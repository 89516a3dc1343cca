"""What the engine can run, by name: methods, models, datasets and their facts.

Torch-free on purpose: the API, the CLI's parser and the form read these without importing the
engine. The engine keeps its own registries keyed by the same names (``pruning.models``,
``pruning.methods.BASELINE_CLASSES``, ``pruning.data``); tests keep the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass

# family: "dense" trains without pruning, "dual-averaging" prunes through its optimizer (c, mu),
# "baseline" is SGD with momentum and weight decay plus a method that masks groups.
METHOD_FAMILIES: dict[str, str] = {
    "sgd": "dense",
    "grda": "dual-averaging",
    "sdprun": "dual-averaging",
    "l1-filter": "baseline",
    "spp": "baseline",
    "increg": "baseline",
    "gfs": "baseline",
    "eigendamage": "baseline",
    "pivot": "baseline",
}
METHODS = tuple(METHOD_FAMILIES)
BASELINES = tuple(m for m, family in METHOD_FAMILIES.items() if family == "baseline")
DUAL_AVERAGING = tuple(m for m, family in METHOD_FAMILIES.items() if family == "dual-averaging")
# The baselines whose selection looks at training samples (prune_samples).
DATA_DRIVEN = ("gfs", "eigendamage", "pivot")

MODELS = ("mlp", "cnn-small", "vgg16-bn", "resnet20", "resnet56", "wrn-28-10")
# Smallest input side each model accepts. The max-pools floor the side (cnn-small has one,
# vgg16-bn five), while strided 3x3 convs with padding 1 give ceil(side / 2) >= 1 for any side.
MIN_INPUT_SIDE = {"mlp": 1, "cnn-small": 2, "vgg16-bn": 32, "resnet20": 1, "resnet56": 1,
                  "wrn-28-10": 1}

# The c and μ of grda/sdprun when a job leaves them out, per model family. The digits-scale
# models were tuned on digits; for the CIFAR-scale ones those values force whole VGG16-BN layers
# to zero within the first epochs, so they get the smaller threshold of the gRDA paper's range
# (docs/methods.md, "Defaults per model family").
MODEL_FAMILIES = {"mlp": "digits-scale", "cnn-small": "digits-scale", "vgg16-bn": "cifar-scale",
                  "resnet20": "cifar-scale", "resnet56": "cifar-scale",
                  "wrn-28-10": "cifar-scale"}
THRESHOLD_DEFAULTS = {"digits-scale": {"c": 0.015, "mu": 0.6},
                      "cifar-scale": {"c": 0.005, "mu": 0.51}}

TARGETS = ("flops", "params")
SCHEDULES = ("constant", "step", "cosine", "grda-paper")
# Whether a schedule's lr changes every optimizer step or only at epoch starts.
SCHEDULE_UNITS = ("step", "epoch")
# How sdprun sizes a group's threshold (docs/methods.md, "Group weighting under BatchNorm").
GROUP_WEIGHTINGS = ("elements", "batchnorm")
DEVICES = ("auto", "cpu", "cuda")
REFERENCES = ("none", "sgd")
ANALYSIS_KINDS = ("linear", "bezier", "hessian", "plane")


@dataclass(frozen=True)
class DatasetFacts:
    """What validation needs to know of a dataset: input shape, classes, training samples."""

    input_shape: tuple[int, int, int]
    num_classes: int
    train_size: int


# Built in: every worker has them, so they need no data folder and no worker to report them.
DIGITS = DatasetFacts((1, 8, 8), 10, 1437)
BUILTIN_DATASETS = ("digits", "synthetic")
# Read from a folder that a worker reports under its data roots (the facts come from the files).
FOLDER_DATASETS = ("mnist", "cifar10", "cifar100", "imagefolder", "npz")
DATASETS = BUILTIN_DATASETS + FOLDER_DATASETS

# Models and datasets beyond the built-in ones: a model pushed to the service (its name is
# chosen by the user, lower-case), or a name a worker plugin registers (entry points
# ``pruneboard.models`` / ``pruneboard.datasets``). Both are validated against what the service
# knows (ServiceContext); a notebook passes its own module to ``pruning.train(config, model=…)``.
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
PLUGIN_MODEL_GROUP = "pruneboard.models"
PLUGIN_DATASET_GROUP = "pruneboard.datasets"
# A model of one's own starts from its weights (pretrained) or fresh ones drawn from the seed.
INITS = ("pretrained", "random")
# The c and μ family of a model that is not built in: the gentler cifar-scale threshold, since
# it usually arrives trained and should be pruned without being wrecked first.
CUSTOM_MODEL_FAMILY = "cifar-scale"


def model_family(model: str) -> str:
    return MODEL_FAMILIES.get(model, CUSTOM_MODEL_FAMILY)
