"""The Job: everything a run needs, built from a config: device, data, model, groups, optimizer.

``check_buildable`` runs the same building steps without data or weights (the model on the meta
device), so a test can show that the job spec accepts exactly the configs the engine can start.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from pruneboard.spec import DatasetFacts
from pruning.config import BASELINES, ConfigError, TrainConfig
from pruning.data import DATASET_NAMES as DATASETS
from pruning.data import Dataset, DatasetError, load_dataset, read_digits
from pruning.data.builtin import check_synthetic
from pruning.groups import GroupStructure, build_groups, is_excluded
from pruning.methods import Method, make_method
from pruning.methods.common import Schedule
from pruning.metrics import CostModel
from pruning.models import ModelError, build_model
from pruning.optim import GRDA, SDprun
from pruning.twin import Twin, make_twin


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


def prepare(config: TrainConfig, model: nn.Module | None = None, *,
            progress: Callable[[int, int], None] | None = None) -> Job:
    """Build the job. ``model``: a network of one's own (a notebook's module, a pushed model a
    worker rebuilt) instead of the registry's ``config.model``; it must take the data's inputs
    and give one logit per class. It starts from its own weights unless ``config.init`` is
    ``random``. The module is trained in place. ``progress(done, total)``: while an image
    folder is decoded into its cache."""
    device = resolve_device(config.device)
    try:
        data = load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed,
                            synthetic_shape=config.synthetic_shape,
                            synthetic_classes=config.synthetic_classes,
                            synthetic_size=config.synthetic_size,
                            image_size=config.image_size, progress=progress).to(device)
    except DatasetError as error:
        raise ConfigError.single("data_dir", str(error)) from error
    train_size = len(data.train_y)
    _check_batch_size(config, train_size)
    # Seeding right before building makes the initial weights a function of the seed alone, so
    # an SGD twin and an sDprun run with the same seed start from the same point.
    torch.manual_seed(config.seed)
    if model is None:
        model = _build_model(config, data.input_shape, data.num_classes)
    else:
        check_own_model(model, data.input_shape, data.num_classes)
        if config.init == "random":
            reset_weights(model)
    model = model.to(device)
    structure = build_groups(model, data.input_shape, exclude=config.exclude,
                             coupled=config.method not in BASELINES)
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
        # momentum and weight decay are non-zero only for the baselines (see pruning.twin).
        twin=make_twin(model, config.lr, momentum=config.momentum,
                       weight_decay=config.weight_decay) if config.reference == "sgd" else None,
    )
    job.method = make_method(job)
    return job


def check_buildable(config: TrainConfig) -> None:
    """Build what ``prepare`` builds, without data or weights: the data's facts from the engine's
    own readers, the model on the meta device, a forward pass of two samples, its groups, cost
    model, optimizer and a baseline's schedule. Raises what ``prepare`` would raise
    (ConfigError, or ValueError from a layer, an optimizer or a schedule). ``config`` may come
    from ``TrainConfig.model_construct`` (unvalidated)."""
    resolve_device(config.device)
    facts = data_facts(config)
    _check_batch_size(config, facts.train_size)
    if config.method in BASELINES:
        Schedule.check(config)
    with torch.device("meta"):
        model = _build_model(config, facts.input_shape, facts.num_classes)
        model.train()  # as in training: a BatchNorm needs more than one value per channel
        model(torch.zeros(config.batch_size, *facts.input_shape))
        structure = build_groups(model, facts.input_shape, exclude=config.exclude,
                                 coupled=config.method not in BASELINES)
        CostModel(model, structure, facts.input_shape)
        make_optimizer(config, model, structure)


def data_facts(config: TrainConfig) -> DatasetFacts:
    """Input shape, classes and training samples of the config's data, read as ``prepare``
    would read them but without loading a dataset that is drawn (synthetic) or held in files
    beyond what their facts need."""
    try:
        if config.dataset == "digits":
            splits = read_digits()
            return DatasetFacts(tuple(splits.train_x.shape[1:]), 10, len(splits.train_y))
        if config.dataset == "synthetic":
            shape = tuple(config.synthetic_shape)
            check_synthetic(shape, config.synthetic_classes, config.synthetic_size)
            return DatasetFacts(shape, config.synthetic_classes, config.synthetic_size)
        if config.dataset not in DATASETS:
            # A plugin's data: only its own reader knows the facts, so it is read.
            data = load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed)
            return DatasetFacts(data.input_shape, data.num_classes, len(data.train_y))
        if not config.data_dir:
            raise DatasetError(f"{config.dataset} is read from files: pass data_dir")
        from pruning.data.facts import folder_facts

        return folder_facts(config.dataset, Path(config.data_dir), config.image_size)
    except DatasetError as error:
        raise ConfigError.single("data_dir", str(error)) from error


def _check_batch_size(config: TrainConfig, train_size: int) -> None:
    if config.batch_size > train_size:
        raise ConfigError.single("batch_size", f"must be at most the {train_size} training "
                                               f"samples of {config.dataset}, got "
                                               f"{config.batch_size}")


def _build_model(config: TrainConfig, input_shape: tuple[int, ...], num_classes: int
                 ) -> nn.Module:
    # The registry builds fresh networks: it has no versions and no trained weights to start
    # from (a pushed model is rebuilt by the worker and passed in as a module).
    if config.model_version is not None:
        raise ConfigError.single("model_version", f"{config.model} is built by name and has "
                                                  f"no versions; leave model_version out")
    if config.init == "pretrained":
        raise ConfigError.single("init", f"{config.model} is built by name and has no trained "
                                         f"weights; pass your trained module as model=")
    try:
        return build_model(config.model, input_shape=input_shape, num_classes=num_classes,
                           mlp_widths=tuple(config.mlp_widths))
    except ModelError as error:
        raise ConfigError.single("model", str(error)) from error


def check_own_model(model: nn.Module, input_shape: tuple[int, ...], num_classes: int) -> None:
    """ConfigError (on ``model``) unless ``model`` maps two samples of ``input_shape`` to
    ``(2, num_classes)`` logits."""
    first = next(model.parameters(), None)
    sample = torch.zeros(2, *input_shape, dtype=first.dtype if first is not None else None,
                         device=first.device if first is not None else None)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(sample)
    except Exception as error:  # a user's forward can fail in any way; name it, then stop
        raise ConfigError.single("model", f"the model cannot take inputs of shape "
                                          f"{tuple(input_shape)}: {type(error).__name__}: "
                                          f"{error}") from error
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError.single("model", f"the model must return (batch, {num_classes}) logits "
                                          f"for the data's {num_classes} classes; it returned "
                                          f"{shape}")


def reset_weights(model: nn.Module) -> None:
    """Fresh weights from the global RNG (seeded by the caller), layer by layer."""
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


def make_optimizer(config: TrainConfig, model: nn.Module,
                   structure: GroupStructure) -> torch.optim.Optimizer:
    if config.method == "sgd" or config.method in BASELINES:
        # One SGD for the whole run: the baselines prune with masks around its step.
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    if config.method == "grda":
        return GRDA(grda_param_groups(model, config.exclude), lr=config.lr, c=config.c,
                    mu=config.mu)
    return SDprun(structure.param_groups(config.group_weighting), lr=config.lr, c=config.c,
                  mu=config.mu)


def grda_param_groups(model: nn.Module, exclude: tuple[str, ...]) -> list[dict]:
    """gRDA as published: every weight is thresholded, the classifier included; only the
    parameters of layers the job excludes get plain dual averaging."""
    kept, free = [], []
    for name, p in model.named_parameters():
        (free if is_excluded(name.rpartition(".")[0], exclude) else kept).append(p)
    return [g for g in ({"params": kept}, {"params": free, "prune": False}) if g["params"]]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError.single("device", "cuda was asked for but no CUDA device is available "
                                           "here; use cpu or auto")
    return torch.device(name)
