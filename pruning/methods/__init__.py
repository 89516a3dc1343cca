"""Pruning methods as hooks around the optimizer step, in one explicit registry.

sgd, grda and sdprun need nothing beyond their optimizer: they use the base ``Method``, whose
hooks do nothing. A baseline that masks, penalises or selects groups (l1-filter, spp, increg, …)
subclasses it and is listed in ``BASELINE_CLASSES`` under its name in the job spec
(``pruneboard.spec.BASELINES``; a test keeps the two equal). The training loop calls, for every
step: ``before_forward`` → forward/backward → ``before_step`` → ``optimizer.step()`` →
``after_step``; ``metrics()`` adds method-specific numbers to each train event, and
``state_dict``/``load_state_dict`` travel in checkpoints so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pruning.methods.base import Method
from pruning.methods.eigendamage import EigenDamage
from pruning.methods.gfs import GreedyForwardSelection
from pruning.methods.increg import IncReg
from pruning.methods.l1_filter import L1Filter
from pruning.methods.pivot import Pivot
from pruning.methods.spp import SPP

if TYPE_CHECKING:
    from pruning.job import Job

__all__ = ["BASELINE_CLASSES", "Method", "make_method"]

BASELINE_CLASSES: dict[str, type[Method]] = {
    "l1-filter": L1Filter,
    "spp": SPP,
    "increg": IncReg,
    "gfs": GreedyForwardSelection,
    "eigendamage": EigenDamage,
    "pivot": Pivot,
}


def make_method(job: Job) -> Method:
    return BASELINE_CLASSES.get(job.config.method, Method)(job)
