"""The pruning forecast before anything runs: which layers the threshold alone forces to zero.

sDprun sets a group's weights to ``v_G · max(0, 1 − λ_n·s_G/‖v_G‖)`` with the accumulator ``v``
started at the initial weights and the threshold ``λ_n`` growing every step
(``pruning.optim.dual_averaging``). So a group is exactly zero, whatever the gradient did not
add, once ``λ_n·s_G ≥ ‖v_0,G‖``: with ``s_G = √|G|`` (``group_weighting="elements"``) against the
whole group's norm, or ``s_G = √2`` per BatchNorm against the norm of its γ, β alone
(``"batchnorm"``, for a group that has a BatchNorm). gRDA thresholds weight by weight
(``|v| ≤ λ_n``); for it the forecast gives the step by which λ_n passes a layer's median
``|w_0|``, when half its weights are zero.

This module forecasts that for the built-in models from their architecture alone (no torch), so
the API and the New-job form can show it before a job is queued: the layers and channel spaces
come from the walk that counts their sizes (``pruneboard.spec.sizes``), the norms are the
expected norms of the models' initialisation (``pruning.models.common.init_weights``), and λ_n is
accumulated as the optimizer does, under the job's learning-rate schedule. ``pruning.forecast``
computes the same from a built job's real weights; ``warning_text`` words both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pruneboard.spec import catalog
from pruneboard.spec.catalog import DUAL_AVERAGING
from pruneboard.spec.rules import dataset_facts
from pruneboard.spec.service import ServiceContext
from pruneboard.spec.sizes import Layer, count_model
from pruneboard.spec.threshold_path import ThresholdPath

MEDIAN_HALF_NORMAL = 0.6744897501960817  # median of |N(0, 1)|
# Layers in a row whose death steps differ by at most this share are named as one range.
SAME_STEP = 0.1
MAX_RUNS_NAMED = 4


# -- groups of the built-in models ------------------------------------------------------------

@dataclass
class ArchitectureGroup:
    """One sDprun group of a built-in model: units × rows of its producers and BatchNorms, with
    the expected initial square norm of one unit."""

    name: str
    units: int
    producers: list[Layer] = field(default_factory=list)
    norms: list[Layer] = field(default_factory=list)

    @property
    def unit_size(self) -> int:
        return (sum(p.channels_in * p.kernel**2 + p.bias for p in self.producers)
                + 2 * len(self.norms))

    @property
    def square_norm(self) -> float:
        """E‖w_0,G‖² of one unit: its producers' rows plus γ = 1, β = 0 of each BatchNorm."""
        return sum(expected_square_row(p) for p in self.producers) + len(self.norms)


def expected_square_row(layer: Layer) -> float:
    """E‖row‖² at initialisation (``init_weights``): a conv is kaiming normal with fan_out and
    the ReLU gain, σ² = 2/(C_out·k²) over C_in·k² weights, bias zero; a Linear keeps PyTorch's
    U(±1/√fan_in) for weight and bias, b²/3 each."""
    if layer.kind == "conv":
        return 2 * layer.channels_in / layer.channels_out
    return (layer.channels_in + layer.bias) / (3 * layer.channels_in)


def architecture_groups(layers: Sequence[Layer], exclude: Sequence[str] = ()
                        ) -> list[ArchitectureGroup]:
    """The coupled groups the engine's dependency graph makes of these layers: one per channel
    space (every producer writing into it and every BatchNorm on it), in the model's order and
    named by its first producer; the space of the model's output (the classifier) and any group
    holding an excluded layer stay dense."""
    if not layers:
        return []
    output = layers[-1].space
    spaces: dict[str, ArchitectureGroup] = {}
    for layer in layers:
        if layer.space == output:
            continue
        if layer.kind == "batchnorm":
            group = spaces.get(layer.space)
            if group is not None:
                group.norms.append(layer)
            continue
        group = spaces.setdefault(layer.space, ArchitectureGroup(layer.name, layer.channels_out))
        group.producers.append(layer)
    return [g for g in spaces.values()
            if not any(_excluded(layer.name, exclude) for layer in g.producers + g.norms)]


def _excluded(name: str, exclude: Sequence[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in exclude)


# -- the forecast -----------------------------------------------------------------------------

def forecast_for(spec: Any, service: ServiceContext | None = None) -> dict[str, Any] | None:
    """The forecast of a validated job spec, with the data's facts as validation reads them
    (a data folder's from the live workers' reports); None where they are unknown."""
    return forecast_spec(spec, dataset_facts(spec, service))


def forecast_warnings(forecast: dict[str, Any] | None) -> list[str]:
    """The forecast's warnings, for a response's ``warnings``."""
    return [forecast["warning"]] if forecast and forecast.get("warning") else []


def forecast_spec(spec: Any, facts: catalog.DatasetFacts | None) -> dict[str, Any] | None:
    """The forecast of a validated job spec on data with these facts, from the architecture;
    None for a method without a threshold, when the data's facts are unknown, or for a model
    that is not built in (its layers are known only to the worker that inspected it; the
    worker's start event brings the engine's own forecast)."""
    if spec.method not in DUAL_AVERAGING or facts is None or spec.model not in catalog.MODELS:
        return None
    steps_per_epoch = facts.train_size // spec.batch_size
    total = spec.epochs * steps_per_epoch
    path = ThresholdPath.of(spec, total, steps_per_epoch)
    count = count_model(spec.model, facts.input_shape, facts.num_classes, spec.mlp_widths)
    exclude = tuple(spec.exclude)
    if spec.method == "grda":
        weighting = None
        entries = [_grda_entry(layer, path) for layer in count.layers
                   if layer.kind != "batchnorm" and not _excluded(layer.name, exclude)]
    else:
        weighting = spec.group_weighting
        entries = [_sdprun_entry(group, path, weighting)
                   for group in architecture_groups(count.layers, exclude)]
    return forecast_document(spec.method, weighting, "architecture", entries,
                             start_step=0, total_steps=total, threshold_end=path.final)


def forecast_document(method: str, weighting: str | None, basis: str,
                      entries: list[dict[str, Any]], *, start_step: int, total_steps: int,
                      threshold_end: float) -> dict[str, Any]:
    """The forecast as the API, the start event and the pages carry it: ``basis`` is
    "architecture" (this module) or "engine" (``pruning.forecast``, the job's real weights)."""
    return {"method": method, "weighting": weighting, "basis": basis,
            "start_step": start_step, "total_steps": total_steps,
            "threshold_end": threshold_end, "layers": entries,
            "warning": warning_text(entries, total_steps, method, weighting)}


def layer_entry(name: str, producers: list[str], units: int, unit_size: int,
                needed: float, step: int | None, forced_fraction: float) -> dict[str, Any]:
    """One layer or group: ``step`` is when at least half its units (gRDA: weights) are forced
    to zero by the threshold, None if not within the run; ``needed`` the λ that takes."""
    return {"name": name, "producers": producers, "units": units, "unit_size": unit_size,
            "lambda_needed": needed, "step": step, "forced_fraction": forced_fraction}


def _sdprun_entry(group: ArchitectureGroup, path: ThresholdPath, weighting: str
                  ) -> dict[str, Any]:
    if weighting == "batchnorm" and group.norms:
        # Every BatchNorm's γ = 1, β = 0: ‖(γ, β)‖ = √(BatchNorms), against λ·√(2·BatchNorms).
        needed = math.sqrt(len(group.norms)) / math.sqrt(2 * len(group.norms))
    else:
        needed = math.sqrt(group.square_norm) / math.sqrt(group.unit_size)
    step = path.first_step(needed)
    return layer_entry(group.name, [p.name for p in group.producers], group.units,
                       group.unit_size, needed, step, 0.0 if step is None else 1.0)


def _grda_entry(layer: Layer, path: ThresholdPath) -> dict[str, Any]:
    weights = layer.channels_out * layer.channels_in * layer.kernel**2
    if layer.kind == "conv":
        sigma = math.sqrt(2 / (layer.channels_out * layer.kernel**2))
        needed = MEDIAN_HALF_NORMAL * sigma
        forced = math.erf(path.final / (sigma * math.sqrt(2)))
    else:
        bound = 1 / math.sqrt(layer.channels_in)
        needed = bound / 2
        forced = min(path.final / bound, 1.0)
    return layer_entry(layer.name, [layer.name], weights, 1, needed, path.first_step(needed),
                       forced)


# -- the words --------------------------------------------------------------------------------

def warning_text(layers: Sequence[dict[str, Any]], total_steps: int, method: str,
                 weighting: str | None = None) -> str | None:
    """"features.27–40 will be forced to zero at step ~165 of 320. …" for the layers whose
    median unit the threshold alone forces to zero within the run (consecutive layers with
    about the same step as one range, earliest first), or None."""
    runs: list[list[dict[str, Any]]] = []
    previous = None
    for index, layer in enumerate(layers):
        step = layer["step"]
        if step is None:
            continue
        run = runs[-1] if runs else None
        if (run is None or previous != index - 1
                or abs(step - run[0]["step"]) > SAME_STEP * run[0]["step"]):
            runs.append([layer])
        else:
            run.append(layer)
        previous = index
    if not runs:
        return None
    runs.sort(key=lambda run: min(layer["step"] for layer in run))
    named, rest = runs[:MAX_RUNS_NAMED], runs[MAX_RUNS_NAMED:]
    grda = method == "grda"
    parts = []
    for i, run in enumerate(named):
        names, when = _run_names(run), _run_steps(run, by=grda)
        if grda:
            parts.append(f"half the weights of {names} will be zero {when}" if i == 0
                         else f"of {names} {when}")
        else:
            parts.append(f"{names} will be forced to zero {when}" if i == 0
                         else f"{names} {when}")
    if rest:
        more = sum(len(run) for run in rest)
        last = max(layer["step"] for run in rest for layer in run)
        parts.append(f"{more} more layer{'s' if more > 1 else ''} by step ~{last:,}")
    head = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{head} of {total_steps:,}. {_why(method, weighting)}"


def _why(method: str, weighting: str | None) -> str:
    if method == "grda":
        reach = "λₙ passes the layer's median initial |w|"
        keep = "a weight"
    elif weighting == "batchnorm":
        reach = ("λₙ·√2 reaches the norm of the group's BatchNorm γ, β (without a BatchNorm, "
                 "λₙ·√|G| its initial norm)")
        keep = "a group"
    else:
        reach = "λₙ·√|G| reaches the group's initial norm ‖w₀‖"
        keep = "a group"
    return (f"This is the threshold alone ({reach}), ignoring the gradient: the gradient can "
            f"keep {keep} only by growing it, and the weights before a BatchNorm get almost "
            f"none along themselves. Lower c or μ to keep these layers.")


def _run_steps(run: list[dict[str, Any]], *, by: bool) -> str:
    low, high = min(layer["step"] for layer in run), max(layer["step"] for layer in run)
    word = "by" if by else "at"
    return f"{word} step ~{low:,}" if low == high else f"{word} steps ~{low:,}–{high:,}"


def _run_names(run: list[dict[str, Any]]) -> str:
    """"features.27–40", "layer3.0–2.conv1", or "a–b" when the names differ more."""
    first, last = run[0]["name"], run[-1]["name"]
    if len(run) == 1:
        return first
    a, b = first.split("."), last.split(".")
    differ = [i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
    if len(a) == len(b) and len(differ) == 1 and a[differ[0]].isdigit() and b[differ[0]].isdigit():
        i = differ[0]
        return ".".join([*a[:i], f"{a[i]}–{b[i]}", *a[i + 1:]])
    return f"{first}–{last}"
