"""The SGD twin: a dense run from the same initial weights, seed, minibatch order and schedule.

The loss-valley analysis compares the pruned solution with the one plain SGD finds; the comparison
only means something when both runs start from the same point and see the same data. So the twin
is trained in lock-step inside the same run: every step both models take the very same
(augmented) minibatch with the same learning rate. Plain SGD, no momentum or weight decay, is
what dual averaging reduces to without its threshold. Its reported accuracy is measured as the
run's (``pruning.bn_stats``: BatchNorm re-estimated on the same subset, its buffers put back).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Twin:
    model: nn.Module
    optimizer: torch.optim.Optimizer

    def state_dict(self) -> dict:
        return {"reference_model": self.model.state_dict(),
                "reference_optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, payload: dict) -> None:
        self.model.load_state_dict(payload["reference_model"])
        self.optimizer.load_state_dict(payload["reference_optimizer"])


def make_twin(model: nn.Module, lr: float, *, momentum: float = 0.0,
              weight_decay: float = 0.0) -> Twin:
    """Call before the first step: the twin copies the model's initial weights."""
    twin_model = copy.deepcopy(model)
    return Twin(twin_model, torch.optim.SGD(twin_model.parameters(), lr=lr, momentum=momentum,
                                            weight_decay=weight_decay))


def step_model(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
               targets: torch.Tensor, autocast) -> torch.Tensor:
    with autocast():
        loss = F.cross_entropy(model(inputs), targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss
