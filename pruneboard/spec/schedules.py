"""Learning-rate schedules as pure functions of progress, so a resumed run needs no state."""

from __future__ import annotations

import math


def learning_rate(schedule: str, base_lr: float, step: int, total_steps: int,
                  milestones: tuple[float, ...] = (), gamma: float = 0.1) -> float:
    """lr for the 0-based ``step`` of a run of ``total_steps``.

    - constant: base_lr throughout.
    - step: multiplied by ``gamma`` at each milestone (a fraction of the run).
    - cosine: base_lr · (1 + cos(π·t)) / 2 with t the fraction done.
    - grda-paper: constant for the first 50 %, linear decay to 1 % of base_lr by 90 %, then flat
      (the schedule of the gRDA paper's ImageNet runs).
    """
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
