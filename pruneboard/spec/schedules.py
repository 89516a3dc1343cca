"""Learning-rate schedules as pure functions of progress, so a resumed run needs no state.

Torch-free, so the engine's training loop and the forecast the API makes before a job runs
(``pruneboard.spec.forecast``) read the very same function; ``pruning.schedules`` re-exports it.
"""

from __future__ import annotations

import math

from pruneboard.spec.catalog import SCHEDULE_UNITS


def learning_rate(schedule: str, base_lr: float, step: int, total_steps: int,
                  milestones: tuple[float, ...] = (), gamma: float = 0.1, *,
                  unit: str = "step", steps_per_epoch: int = 1) -> float:
    """lr for the 0-based ``step`` of a run of ``total_steps``.

    - constant: base_lr throughout.
    - step: multiplied by ``gamma`` at each milestone (a fraction of the run).
    - cosine: base_lr · (1 + cos(π·t)) / 2 with t the fraction done.
    - grda-paper: constant for the first 50 %, linear decay to 1 % of base_lr by 90 %, then flat
      (the schedule of the gRDA authors' CIFAR mode-connectivity code, which applies it per
      epoch: use ``unit="epoch"`` to match it).

    ``unit="step"`` (the default) takes t = step / total_steps, so the lr changes every step.
    ``unit="epoch"`` evaluates the schedule at the first step of the step's epoch and holds it
    for the whole epoch: t = epoch / epochs, with epochs = total_steps / ``steps_per_epoch``
    (the value is the step-unit value at the epoch's first step, bit for bit).
    """
    if unit == "epoch":
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be at least 1; got {steps_per_epoch}")
        step = step // steps_per_epoch * steps_per_epoch
    elif unit != "step":
        raise ValueError(f"unknown schedule unit {unit!r}; choose one of: "
                         f"{', '.join(SCHEDULE_UNITS)}")
    t = step / max(total_steps, 1)
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        return base_lr * gamma ** sum(t >= m for m in milestones)
    if schedule == "cosine":
        return base_lr * (1 + math.cos(math.pi * t)) / 2
    if schedule == "grda-paper":
        if t < 0.5:
            return base_lr
        if t < 0.9:
            return base_lr * (1 - 0.99 * (t - 0.5) / 0.4)
        return base_lr * 0.01
    raise ValueError(f"unknown schedule {schedule!r}")
