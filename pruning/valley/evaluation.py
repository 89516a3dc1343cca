"""One point of weight space measured: load it, re-estimate BatchNorm, evaluate in eval mode."""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pruning.data import Dataset
from pruning.evaluate import evaluate

from .batchnorm import reestimate_batchnorm
from .weights import State


def training_subset(data: Dataset, limit: int, seed: int) -> tuple[Tensor, Tensor]:
    """The training samples every training-loss evaluation uses: all of them when there are at
    most ``limit``, else a random subset of ``limit`` drawn with ``seed`` (kept in data order)."""
    size = len(data.train_y)
    if size <= limit:
        return data.train_x, data.train_y
    chosen = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:limit]
    chosen = chosen.sort().values.to(data.train_x.device)
    return data.train_x[chosen], data.train_y[chosen]


def evaluate_state(model: nn.Module, state: State, data: Dataset, train_x: Tensor,
                   train_y: Tensor, *, batch_size: int, reestimate_bn: bool = True) -> dict:
    """Load ``state`` into ``model``, re-estimate BatchNorm on ``train_x`` (when it has any and
    ``reestimate_bn``), then in eval mode: mean cross entropy and top-1 accuracy on
    (train_x, train_y) and on the whole test set, computed by :func:`pruning.evaluate.evaluate`."""
    model.load_state_dict(state)
    if reestimate_bn:
        reestimate_batchnorm(model, train_x, batch_size=batch_size)
    device = train_x.device
    test = evaluate(model, data, device, batch_size=batch_size)
    on_train = dataclasses.replace(data, test_x=train_x, test_y=train_y)
    train = evaluate(model, on_train, device, batch_size=batch_size)
    return {"train_loss": finite(train["test_loss"]),
            "train_accuracy": finite(train["test_accuracy"]),
            "test_loss": finite(test["test_loss"]), "test_accuracy": finite(test["test_accuracy"])}


@torch.no_grad()
def mean_loss(model: nn.Module, inputs: Tensor, targets: Tensor, *, batch_size: int) -> float:
    """Mean cross entropy over (inputs, targets) in the model's current mode."""
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for start in range(0, len(targets), batch_size):
        logits = model(inputs[start:start + batch_size]).float()
        total += F.cross_entropy(logits, targets[start:start + batch_size],
                                 reduction="sum").double()
    return total.item() / len(targets)


def finite(value: float) -> float | None:
    """JSON has no NaN or infinity: a diverged loss is reported as None."""
    value = float(value)
    return value if math.isfinite(value) else None


def barriers(losses: list[float | None], ts: list[float]) -> dict:
    """The loss barrier of a path measured at ``ts`` (from 0 to 1), two ways, with where each is
    reached (the first t on ties):

    - ``barrier``: the height above the chord between the ends, the mode-connectivity measure
      (Garipov et al. 2018; Frankle et al. 2020):
      ``max_t [L(t) − ((1−t)·L(0) + t·L(1))]``;
    - ``barrier_above_ends``: the height above the higher end, ``max_t L(t) − max(L(0), L(1))``.

    Both are ≥ 0 (the ends themselves count, at height 0), and ``barrier ≥ barrier_above_ends``
    since the chord never rises above the higher end: a path that climbs from a low end to a
    high one without bumping above it has the second 0 but the first > 0 wherever it runs above
    the straight line between the ends. All four values are None if any loss is missing
    (diverged) or there are no points.
    """
    if len(losses) != len(ts):
        raise ValueError(f"{len(losses)} losses for {len(ts)} values of t")
    if not losses or any(loss is None for loss in losses):
        return {"barrier": None, "barrier_t": None,
                "barrier_above_ends": None, "barrier_above_ends_t": None}
    start, end = losses[0], losses[-1]
    above_chord = [loss - ((1 - t) * start + t * end) for t, loss in zip(ts, losses, strict=True)]
    chord_peak = max(range(len(ts)), key=above_chord.__getitem__)
    peak = max(range(len(ts)), key=losses.__getitem__)
    return {"barrier": above_chord[chord_peak], "barrier_t": ts[chord_peak],
            "barrier_above_ends": losses[peak] - max(start, end), "barrier_above_ends_t": ts[peak]}
