"""The one config of a training/pruning job, validated field by field.

Each field's metadata holds its help text and allowed values; `TrainConfig.from_dict` checks a
dict from JSON/YAML (or the CLI's flags, which are generated from these fields) and names the
offending field and its allowed range in a `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from pruning.data import DATASET_NAMES as DATASETS
from pruning.models import MODEL_NAMES as MODELS

METHODS = ("sgd", "grda", "sdprun", "l1-filter", "spp", "increg", "gfs", "eigendamage", "pivot")
# The literature's baselines (pruning.methods): SGD with momentum and weight decay plus masks.
BASELINES = METHODS[3:]
TARGETS = ("flops", "params")
SCHEDULES = ("constant", "step", "cosine", "grda-paper")
DEVICES = ("auto", "cpu", "cuda")
REFERENCES = ("none", "sgd")
ANALYSES = ("linear", "bezier", "hessian", "plane")
_NEEDS_DATA_DIR = ("mnist", "cifar10", "cifar100")


class ConfigError(ValueError):
    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def _f(default, help: str, *, choices=None, low=None, high=None, open_low=False, items=None):
    meta = {"help": help, "choices": choices, "low": low, "high": high, "open_low": open_low,
            "items": items}
    if isinstance(default, list | tuple):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    model: str = _f("mlp", "network to train (registry name)", choices=MODELS)
    dataset: str = _f("digits", "dataset (digits ships with scikit-learn)", choices=DATASETS)
    data_dir: str | None = _f(None, "folder holding the mnist/cifar files")
    method: str = _f("sdprun", "pruning method (sgd trains the dense reference)", choices=METHODS)
    lr: float = _f(0.1, "learning rate γ", low=0.0, high=10.0, open_low=True)
    c: float = _f(0.015, "threshold scale c of grda/sdprun (larger prunes earlier)",
                  low=0.0, high=1.0)
    mu: float = _f(0.6, "threshold exponent μ of grda/sdprun (larger prunes more)",
                   low=0.0, high=1.0, open_low=True)
    momentum: float = _f(0.0, "momentum (sgd and the baselines)", low=0.0, high=0.999)
    weight_decay: float = _f(0.0, "weight decay (sgd and the baselines)", low=0.0, high=0.1)
    target: str = _f("flops", "what a baseline's target_ratio removes", choices=TARGETS)
    target_ratio: float = _f(0.5, "fraction of the dense FLOPs or params a baseline removes",
                             low=0.0, high=0.99)
    prune_start: float = _f(0.3, "fraction of the run at which a baseline starts pruning "
                            "(dense training before)", low=0.0, high=1.0)
    prune_end: float = _f(0.6, "fraction of the run by which a baseline reaches its target "
                          "(fine-tuning after; equal to prune_start: one-shot)", low=0.0, high=1.0)
    prune_interval: int = _f(10, "steps between a baseline's pruning decisions", low=1,
                             high=1_000_000)
    spp_increment: float = _f(0.05, "spp: largest change of a pruning probability per decision",
                              low=0.0, high=1.0, open_low=True)
    increg_increment: float = _f(0.1, "increg: largest change of a group's L2 penalty factor "
                                 "per decision", low=0.0, high=100.0, open_low=True)
    increg_target: float = _f(1.0, "increg: penalty factor at which a group is removed",
                              low=0.0, high=1000.0, open_low=True)
    prune_samples: int = _f(128, "gfs, eigendamage, pivot: training samples that the "
                            "data-driven selection looks at", low=1, high=1_000_000)
    schedule: str = _f("constant", "learning-rate schedule", choices=SCHEDULES)
    lr_milestones: tuple[float, ...] = _f((0.5, 0.75), "fractions of the run where the step "
                                          "schedule multiplies lr by lr_gamma", low=0.0, high=1.0,
                                          items=float)
    lr_gamma: float = _f(0.1, "factor of each step-schedule milestone", low=0.0, high=1.0,
                         open_low=True)
    epochs: int = _f(80, "passes over the training set", low=1, high=10_000)
    batch_size: int = _f(64, "minibatch size", low=1, high=65_536)
    seed: int = _f(0, "seed of weights, data order and augmentation", low=0, high=2**31 - 1)
    device: str = _f("auto", "where to train (auto picks cuda when present)", choices=DEVICES)
    amp: bool = _f(True, "bfloat16 autocast on CUDA (no effect on the CPU)")
    log_interval: int = _f(20, "steps between train events", low=1, high=1_000_000)
    checkpoint_interval: int = _f(0, "steps between checkpoints (0: at epoch ends only)",
                                  low=0, high=10_000_000)
    checkpoint_dir: str | None = _f(None, "folder for checkpoints (none: no checkpoints)")
    mlp_widths: tuple[int, ...] = _f((300, 100), "hidden widths of the mlp model", low=1,
                                     high=65_536, items=int)
    exclude: tuple[str, ...] = _f((), "layer names never to prune", items=str)
    synthetic_shape: tuple[int, ...] = _f((1, 8, 8), "C,H,W of synthetic inputs", low=1,
                                          high=4096, items=int)
    synthetic_classes: int = _f(10, "classes of the synthetic dataset", low=2, high=1000)
    synthetic_size: int = _f(2048, "training samples of the synthetic dataset", low=8,
                             high=10_000_000)
    reference: str = _f("none", "also train a plain SGD twin from the same initial weights, seed, "
                        "minibatch order and schedule, for the loss-valley analysis",
                        choices=REFERENCES)
    valley_interval: int = _f(0, "epochs between live valley checks: train loss on the line "
                              "from the twin to the current weights (0: off; needs the twin)",
                              low=0, high=10_000)
    analyses: tuple[str, ...] = _f(("linear", "hessian", "plane"), "loss-valley analyses run "
                                   "when a job with a twin ends", items=str, choices=ANALYSES)
    compact: bool = _f(True, "at the end, remove the pruned groups physically and measure the "
                             "small network's size, latency and accuracy")
    export_dir: str | None = _f(None, "folder for the exported small model (none: no export)")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _check_field(f, getattr(self, f.name)))
        for name, methods in _METHOD_FIELDS.items():
            if self.method not in methods and getattr(self, name) != _default(name):
                why = (f"dual averaging without {name.replace('_', ' ')}"
                       if self.method in ("grda", "sdprun") else "does not use it")
                raise ConfigError(name, f"applies only to method {', '.join(methods)}; "
                                        f"{self.method} {why}")
        if self.prune_end < self.prune_start:
            raise ConfigError("prune_end", f"must be at least prune_start ({self.prune_start}), "
                                           f"got {self.prune_end}")
        if self.dataset in _NEEDS_DATA_DIR and not self.data_dir:
            raise ConfigError("data_dir", f"dataset {self.dataset} is read from a folder; pass "
                                          f"its path (nothing is downloaded)")
        if self.reference != "none" and self.method == self.reference:
            raise ConfigError("reference", f"the job itself trains with {self.method}; a twin "
                                           f"needs a pruning method")
        if self.valley_interval and self.reference == "none":
            raise ConfigError("valley_interval", "the live valley check compares with the twin; "
                                                 "set reference to sgd or valley_interval to 0")
        if self.dataset == "synthetic" and len(self.synthetic_shape) != 3:
            raise ConfigError("synthetic_shape", "must be three numbers C,H,W")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(key, f"unknown field; known fields: {', '.join(sorted(known))}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def config_spec() -> list[dict[str, Any]]:
    """Every field with its type, default, help and allowed values, as plain JSON data.

    The API may not import the engine, so it validates job configs against this spec, kept as
    backend/job_config_spec.json (written by `pruneboard config-spec`; a test keeps it in sync).
    """
    spec = []
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        item = meta["items"]
        spec.append({
            "name": f.name,
            "type": f"list[{item.__name__}]" if item else f.type.replace(" | None", ""),
            "nullable": f.default is None,
            "default": _plain(default),
            "help": meta["help"],
            "choices": list(meta["choices"]) if meta["choices"] else None,
            "low": meta["low"],
            "high": meta["high"],
            "open_low": meta["open_low"],
            "only_for_method": None,
            "requires": _requires(f.name),
            # The API checks this order too: prune_end may not come before prune_start.
            "at_least": "prune_start" if f.name == "prune_end" else None,
        })
    return spec


# Fields that only some methods read; any other method refuses a non-default value.
_METHOD_FIELDS: dict[str, tuple[str, ...]] = {
    "momentum": ("sgd", *BASELINES),
    "weight_decay": ("sgd", *BASELINES),
    **{name: BASELINES for name in ("target", "target_ratio", "prune_start", "prune_end",
                                    "prune_interval")},
    "spp_increment": ("spp",),
    "increg_increment": ("increg",),
    "increg_target": ("increg",),
    "prune_samples": ("gfs", "eigendamage", "pivot"),
}


def _default(name: str) -> Any:
    f = TrainConfig.__dataclass_fields__[name]
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _requires(name: str) -> dict[str, Any] | None:
    """Cross-field rules the API checks too: a non-default value needs ``field`` in ``one_of``."""
    if name in _METHOD_FIELDS:
        return {"field": "method", "one_of": list(_METHOD_FIELDS[name])}
    if name == "reference":
        return {"field": "method", "one_of": [m for m in METHODS if m != "sgd"]}
    if name == "valley_interval":
        return {"field": "reference", "one_of": [r for r in REFERENCES if r != "none"]}
    return None


def describe_range(f: dataclasses.Field) -> str:
    meta = f.metadata
    if meta["choices"]:
        return "one of " + ", ".join(meta["choices"])
    if meta["low"] is None:
        return "any value"
    left = "(" if meta["open_low"] else "["
    return f"in {left}{meta['low']}, {meta['high']}]"


def _check_field(f: dataclasses.Field, value: Any) -> Any:
    meta = f.metadata
    if meta["items"] is not None:
        return _check_sequence(f, value)
    if value is None and f.default is None:
        return None
    if f.type == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f.name, f"must be true or false, got {value!r}")
    if f.type in ("int", "float"):
        return _check_number(f, value)
    if not isinstance(value, str):
        raise ConfigError(f.name, f"must be a string, got {value!r}")
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(f.name, f"must be {describe_range(f)}, got {value!r}")
    return value


def _check_number(f: dataclasses.Field, value: Any, name: str | None = None,
                  kind: str | None = None) -> int | float:
    name = name or f.name
    kind = kind or f.type
    meta = f.metadata
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(name, f"must be a number {describe_range(f)}, got {value!r}")
    if kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(name, f"must be a whole number {describe_range(f)}, got {value!r}")
        value = int(value)
    elif not math.isfinite(value):
        raise ConfigError(name, f"must be a finite number {describe_range(f)}, got {value!r}")
    else:
        value = float(value)
    low, high = meta["low"], meta["high"]
    too_low = value <= low if meta["open_low"] else value < low
    if too_low or value > high:
        raise ConfigError(name, f"must be {describe_range(f)}, got {value!r}")
    return value


def _check_sequence(f: dataclasses.Field, value: Any) -> tuple:
    item_type = f.metadata["items"]
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
        if item_type is not str and len(value) == 1:  # shapes may also be written 3x32x32
            value = value[0].split("x")
        if item_type is not str:
            try:
                value = [item_type(v) for v in value]
            except ValueError:
                raise ConfigError(f.name, f"must be a comma-separated list of "
                                          f"{item_type.__name__}s") from None
    if not isinstance(value, list | tuple):
        raise ConfigError(f.name, f"must be a list, got {value!r}")
    if item_type is str:
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(f.name, "must be a list of strings")
        choices = f.metadata["choices"]
        for i, v in enumerate(value):
            if choices and v not in choices:
                raise ConfigError(f"{f.name}[{i}]", f"must be {describe_range(f)}, got {v!r}")
        return tuple(dict.fromkeys(value))
    kind = "int" if item_type is int else "float"
    return tuple(_check_number(f, v, name=f"{f.name}[{i}]", kind=kind)
                 for i, v in enumerate(value))


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
