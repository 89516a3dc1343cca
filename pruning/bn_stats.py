"""Reported accuracy with BatchNorm statistics that belong to the weights being reported.

BatchNorm's running statistics are an exponential average over past training batches, computed
with past weights. A method that rescales a filter and its γ, β every step (sDprun's shrinkage)
leaves them behind the weights, and the lag compounds with depth: evaluated with them, a pruned
VGG16-BN can score far below what its weights do. So every accuracy a run reports is measured
after re-estimating the statistics (``pruning.valley.batchnorm.reestimate_batchnorm``) on a
fixed subset of ``config.bn_samples`` training samples, without augmentation. During training
the re-estimation is done on the side: the BatchNorm buffers are saved, the model is evaluated
with its running statistics (kept as ``running_stats_*``), re-estimated, evaluated again, and the
buffers put back, so the training run itself never sees the extra passes (same losses, same
checkpoints, bit-identical resume). At the end of the run ``adopt`` makes the re-estimated
statistics the model's own, before compaction and export.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pruning.data import Dataset
from pruning.evaluate import evaluate
from pruning.valley.batchnorm import batchnorm_layers, reestimate_batchnorm

RAW_PREFIX = "running_stats_"
# The smallest re-estimation batch size that never leaves a batch of one sample (``_batch_size``).
_MIN_BATCH = 3


@dataclass(frozen=True)
class ReportedEvaluation:
    """How a run measures what it reports: ``inputs`` are the re-estimation samples (None: report
    the running statistics), ``batch_size`` the re-estimation's batch size."""

    inputs: Tensor | None
    batch_size: int

    @classmethod
    def for_config(cls, config, data: Dataset) -> ReportedEvaluation:
        """The job's fixed subset: ``config.bn_samples`` training samples (all of them when the
        set is no larger; at least 2, since BatchNorm needs two values per channel), the first
        of a permutation drawn from a ``torch.Generator`` of its own seeded by ``config.seed``
        (so no random stream of the run is touched), kept in data order; picked once per job."""
        if config.bn_samples == 0:
            return cls(None, 1)
        return cls(subset_inputs(data, max(config.bn_samples, 2), config.seed),
                   _batch_size(config.batch_size))

    def evaluate(self, model: nn.Module, data: Dataset, device: torch.device,
                 autocast: Callable[[], AbstractContextManager] = nullcontext) -> dict:
        """``pruning.evaluate.evaluate``'s numbers with re-estimated statistics and, for a model
        with BatchNorm, the running-statistics ones under ``running_stats_<key>``. The model's
        buffers (running_mean, running_var, num_batches_tracked) are as before on return."""
        layers = batchnorm_layers(model)
        if self.inputs is None or not layers:
            return evaluate(model, data, device, autocast)
        raw = evaluate(model, data, device, autocast)
        saved = _buffers(layers)
        try:
            reestimate_batchnorm(model, self.inputs, batch_size=self.batch_size)
            result = evaluate(model, data, device, autocast)
        finally:
            _restore(layers, saved)
        return {**result, **{RAW_PREFIX + key: value for key, value in raw.items()}}

    def adopt(self, model: nn.Module) -> bool:
        """Set ``model``'s BatchNorm statistics to the re-estimated ones for good; False (and
        nothing done) when the run reports running statistics or the model has no BatchNorm."""
        if self.inputs is None:
            return False
        return reestimate_batchnorm(model, self.inputs, batch_size=self.batch_size)


def subset_inputs(data: Dataset, count: int, seed: int) -> Tensor:
    """The training inputs (normalised, not augmented) of the re-estimation subset."""
    size = len(data.train_y)
    if size <= count:
        return data.train_x
    chosen = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:count]
    return data.train_x[chosen.sort().values.to(data.train_x.device)]


def _batch_size(batch_size: int) -> int:
    # reestimate_batchnorm splits N samples into ⌈N / b⌉ near-equal batches. With b = 2 that can
    # leave a batch of one (N = 3 gives 2 + 1); from b = 3 on every batch holds at least two
    # samples for any N >= 2 (pinned in tests/pruning/test_bn_stats.py).
    return max(batch_size, _MIN_BATCH)


def _buffers(layers) -> list[tuple[Tensor, ...]]:
    return [tuple(buffer.clone() for buffer in _stats(layer)) for layer in layers]


@torch.no_grad()
def _restore(layers, saved) -> None:
    for layer, values in zip(layers, saved, strict=True):
        for buffer, value in zip(_stats(layer), values, strict=True):
            buffer.copy_(value)


def _stats(layer) -> tuple[Tensor, ...]:
    return tuple(b for b in (layer.running_mean, layer.running_var, layer.num_batches_tracked)
                 if b is not None)
