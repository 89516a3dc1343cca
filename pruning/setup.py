"""Everything a run needs, built from a config: device, data, model, groups, optimizer."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from pruning.config import BASELINES, ConfigError, TrainConfig
from pruning.data import Dataset, DatasetError, load_dataset
from pruning.groups import GroupStructure, build_groups
from pruning.methods import Method, make_method
from pruning.metrics import CostModel
from pruning.models import ModelError, build_model
from pruning.optim import GRDA, SDprun
from pruning.reference import Twin, make_twin


@dataclass
class Job:
    config: TrainConfig
    device: torch.device
    data: Dataset
    model: nn.Module
    structure: GroupStructure
    cost: CostModel
    optimizer: torch.optim.Optimizer
    batch_size: int
    steps_per_epoch: int
    autocast: Callable[[], AbstractContextManager]
    twin: Twin | None = None
    method: Method | None = None  # set by prepare(); the hooks need the finished Job

    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.steps_per_epoch


def prepare(config: TrainConfig) -> Job:
    device = resolve_device(config.device)
    try:
        data = load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed,
                            synthetic_shape=config.synthetic_shape,
                            synthetic_classes=config.synthetic_classes,
                            synthetic_size=config.synthetic_size).to(device)
    except DatasetError as error:
        raise ConfigError("data_dir", str(error)) from error
    train_size = len(data.train_y)
    if config.batch_size > train_size:
        raise ConfigError("batch_size", f"must be at most the {train_size} training samples of "
                                        f"{config.dataset}, got {config.batch_size}")
    # Seeding right before building makes the initial weights a function of the seed alone, so
    # an SGD twin and an sDprun run with the same seed start from the same point.
    torch.manual_seed(config.seed)
    try:
        model = build_model(config.model, input_shape=data.input_shape,
                            num_classes=data.num_classes, mlp_widths=config.mlp_widths).to(device)
    except ModelError as error:
        raise ConfigError("model", str(error)) from error
    structure = build_groups(model, exclude=config.exclude)
    cost = CostModel(model, structure, data.input_shape)
    use_amp = config.amp and device.type == "cuda"
    job = Job(
        config=config, device=device, data=data, model=model, structure=structure, cost=cost,
        optimizer=make_optimizer(config, model, structure),
        batch_size=config.batch_size,
        # The last partial batch is dropped: equal batches keep BatchNorm statistics sound.
        steps_per_epoch=train_size // config.batch_size,
        autocast=partial(torch.autocast, "cuda", dtype=torch.bfloat16) if use_amp
        else nullcontext,
        # momentum and weight decay are non-zero only for the baselines (see pruning.reference).
        twin=make_twin(model, config.lr, momentum=config.momentum,
                       weight_decay=config.weight_decay) if config.reference == "sgd" else None,
    )
    job.method = make_method(job)
    return job


def make_optimizer(config: TrainConfig, model: nn.Module,
                   structure: GroupStructure) -> torch.optim.Optimizer:
    if config.method == "sgd" or config.method in BASELINES:
        # One SGD for the whole run: the baselines prune with masks around its step.
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    optimizer = {"grda": GRDA, "sdprun": SDprun}[config.method]
    return optimizer(structure.param_groups(), lr=config.lr, c=config.c, mu=config.mu)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda was asked for but no CUDA device is available here; "
                                    "use cpu or auto")
    return torch.device(name)
