"""The threshold λ_n of grda/sdprun along a run, torch-free: what the forecast compares with the
groups' norms. The engine's ``pruning.forecast.threshold_path`` sums the same terms step by step;
a test keeps the two equal.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

from pruneboard.spec.schedules import learning_rate

MAX_RUNS = 20_000  # runs of one lr the threshold path keeps (2 M steps: 0.1 s)


def lr_changes(schedule: str, total_steps: int, milestones: Sequence[float] = (), *,
               unit: str = "step", steps_per_epoch: int = 1, limit: int = MAX_RUNS
               ) -> list[int]:
    """0-based steps where the lr may differ from the step before (0 always): between two of
    them it is constant, so λ_n has a closed form there. An lr that changes every step of a
    long run (cosine) is taken in at most ``limit`` blocks of steps, each at the lr of its
    middle step (λ then differs from the step-by-step sum by parts per million)."""
    if schedule == "constant" or total_steps <= 0:
        return [0]

    def every(first: int, end: int, step: int = 1) -> range:
        return range(first, end, max(step, math.ceil((end - first) / limit)))

    if unit == "epoch":
        return list(every(0, total_steps, max(steps_per_epoch, 1)))
    if schedule == "step":
        near = {0}
        for m in milestones:  # t ≥ m in floating point: the step next to m·N, either side
            s = math.ceil(m * total_steps)
            near |= {s - 1, s, s + 1}
        return sorted(s for s in near if 0 <= s < total_steps)
    if schedule == "grda-paper":  # flat before 50 % and after 90 % of the run
        low = max(math.ceil(0.5 * total_steps) - 1, 1)
        high = min(math.ceil(0.9 * total_steps) + 2, total_steps)
        return [0, *every(low, high), high]
    return list(every(0, total_steps))


class ThresholdPath:
    """λ_n after each optimizer step n of a run, accumulated as ``DualAveraging.step`` does:
    ``λ_n = λ_s + Σ_{s<k≤n} c·γ_k^(μ+½)·(k^μ − (k−1)^μ)`` with γ_k the lr set before step k
    (that of the 0-based step k−1), from step ``start`` with threshold ``threshold``. Between
    two lr changes the sum has a closed form, so a run costs one term per change."""

    def __init__(self, lr_of: Callable[[int], float], changes: Sequence[int], total_steps: int,
                 c: float, mu: float, *, start: int = 0, threshold: float = 0.0):
        self.start, self.total_steps, self.mu = start, total_steps, mu
        self.threshold_start = threshold
        bounds = sorted({start, *(s for s in changes if start < s < total_steps)})
        self._first = array("q")   # the run's first 0-based step a: optimizer steps a+1 … b
        self._last = array("q")    # b
        self._scale = array("d")   # c·γ^(μ+½) of the run
        self._before = array("d")  # λ_a
        self._after = array("d")   # λ_b, non-decreasing: what first_step bisects
        value = threshold
        for a, b in zip(bounds, [*bounds[1:], total_steps], strict=True):
            if b <= a:
                continue
            # The lr of the run's middle step: its lr, unless a long run's steps were blocked.
            scale = c * lr_of((a + b - 1) // 2) ** (mu + 0.5)
            self._first.append(a)
            self._last.append(b)
            self._scale.append(scale)
            self._before.append(value)
            value = value + scale * (b**mu - a**mu)
            self._after.append(value)
        self.final = value  # λ after the last step

    @classmethod
    def of(cls, spec: Any, total_steps: int, steps_per_epoch: int, **where: Any
           ) -> ThresholdPath:
        """The path of a job spec (or any config with the same fields)."""
        unit = spec.schedule_unit
        milestones = tuple(spec.lr_milestones)

        def lr_of(step: int) -> float:
            return learning_rate(spec.schedule, spec.lr, step, total_steps, milestones,
                                 spec.lr_gamma, unit=unit, steps_per_epoch=steps_per_epoch)

        changes = lr_changes(spec.schedule, total_steps, milestones, unit=unit,
                             steps_per_epoch=steps_per_epoch)
        return cls(lr_of, changes, total_steps, spec.c, spec.mu, **where)

    def first_step(self, target: float) -> int | None:
        """The first step n after the start with λ_n ≥ target, or None if λ stays below it."""
        run = bisect_left(self._after, target)
        if run == len(self._after):
            return None
        a, b = self._first[run], self._last[run]
        before, scale, mu = self._before[run], self._scale[run], self.mu
        if before >= target or scale == 0:
            return a + 1
        n = min(max(math.ceil((a**mu + (target - before) / scale) ** (1 / mu)), a + 1), b)

        def at(k: int) -> float:
            return before + scale * (k**mu - a**mu)

        while n > a + 1 and at(n - 1) >= target:
            n -= 1
        while n < b and at(n) < target:
            n += 1
        return n
