"""The live valley check: is the current iterate still in the twin's valley?

Every ``valley_interval`` epochs the train loss is measured at evenly spaced points on the line
from the SGD twin's weights (t = 0) to the run's current weights (t = 1), with BatchNorm
statistics re-estimated at each point. A flat line means both iterates sit in one valley; a bump
means pruning has pushed the run over a ridge. The event carries the barrier both ways
(:func:`pruning.valley.evaluation.barriers`): ``barrier``, the height of the loss above the chord
between the ends, and ``barrier_above_ends``, its height above the higher end. The check uses a
fixed subset of the training set, so it costs a few forward passes, and it draws from no shared
random stream, so a run with the check is bit-identical to one without.
"""

from __future__ import annotations

import copy

import torch

from pruning.job import Job
from pruning.valley import linear_path_losses
from pruning.valley.evaluation import barriers

MONITOR_POINTS = 11
MONITOR_SAMPLES = 2048


def valley_event(job: Job, step: int, epoch: int) -> dict:
    # A fixed random subset (files may be stored in class order), drawn from a generator of its
    # own so the run's random streams are untouched.
    generator = torch.Generator().manual_seed(job.config.seed)
    subset = torch.randperm(len(job.data.train_y), generator=generator)[:MONITOR_SAMPLES]
    subset = subset.to(job.data.train_y.device)
    inputs, targets = job.data.train_x[subset], job.data.train_y[subset]
    # A scratch copy: the path evaluation overwrites the weights and BatchNorm statistics.
    losses = linear_path_losses(copy.deepcopy(job.model), job.twin.model.state_dict(),
                                job.model.state_dict(), inputs, targets,
                                points=MONITOR_POINTS, batch_size=512)
    t = [i / (MONITOR_POINTS - 1) for i in range(MONITOR_POINTS)]
    found = barriers(losses, t)
    return {"type": "valley", "step": step, "epoch": epoch, "t": t, "train_loss": losses,
            "barrier": found["barrier"], "barrier_above_ends": found["barrier_above_ends"]}
