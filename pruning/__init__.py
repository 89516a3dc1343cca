"""Pruneboard's engine: structured directional pruning in plain PyTorch.

Usable from a notebook::

    from pruning import TrainConfig, train
    summary = train(TrainConfig(model="mlp", dataset="digits", method="sdprun"), print)
"""

from pruning.compact import compact, load_compact
from pruning.config import ConfigError, TrainConfig
from pruning.groups import GroupStructure, build_groups
from pruning.optim import GRDA, SDprun
from pruning.train import TrainingError, TrainingStopped, train

__all__ = [
    "GRDA",
    "ConfigError",
    "GroupStructure",
    "SDprun",
    "TrainConfig",
    "TrainingError",
    "TrainingStopped",
    "build_groups",
    "compact",
    "load_compact",
    "train",
]
