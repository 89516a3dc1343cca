"""Pruning methods as hooks around the optimizer step.

sgd, grda and sdprun need nothing beyond their optimizer: they use the base ``Method``, whose
hooks do nothing. A baseline that masks, penalises or selects groups (l1-filter, spp, increg, …)
subclasses it and registers under its config name in ``METHOD_CLASSES``. The training loop calls,
for every step: ``before_forward`` → forward/backward → ``before_step`` → ``optimizer.step()`` →
``after_step``; ``metrics()`` adds method-specific numbers to each train event, and
``state_dict``/``load_state_dict`` travel in checkpoints so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pruning.setup import Job


class Method:
    def __init__(self, job: Job):
        self.job = job

    def before_forward(self, step: int) -> None:
        """Before the forward pass of ``step`` (0-based count of completed steps)."""

    def before_step(self, step: int) -> None:
        """Gradients are ready; the optimizer has not stepped yet."""

    def after_step(self, step: int) -> None:
        """The optimizer has stepped."""

    def metrics(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


METHOD_CLASSES: dict[str, type[Method]] = {}


def make_method(job: Job) -> Method:
    return METHOD_CLASSES.get(job.config.method, Method)(job)


# Imported last: each module registers itself in METHOD_CLASSES and imports Method from here.
from pruning.methods import eigendamage, gfs, increg, l1_filter, pivot, spp  # noqa: E402, F401
