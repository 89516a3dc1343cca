"""What compaction bought: size, FLOPs, measured latency and accuracy, dense against compact."""

from __future__ import annotations

import copy
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pruning.compact.latency import measure_latency
from pruning.compact.surgery import compact
from pruning.data import Dataset
from pruning.evaluate import evaluate
from pruning.groups import GroupStructure

# Seconds of timed passes per (network, device, batch size) when ``repeats`` is not given: a
# job's end should cost seconds, not minutes, on a 2-core CPU.
_TIME_BUDGET = 0.5


def compact_report(model: nn.Module, structure: GroupStructure | None, data: Dataset, *,
                   device: torch.device | str, input_shape: tuple[int, ...],
                   batch_sizes: tuple[int, ...] = (1, 64), repeats: int | None = None,
                   warmup: int | None = None, small: nn.Module | None = None) -> dict:
    """JSON-ready comparison of ``model`` (the pruned, dense-shaped network) and its compact form.

    Params count parameters (not buffers); FLOPs are ``torch.utils.flop_counter``'s for one
    sample (2 per multiply-add of convolutions and matrix products, as pruning.metrics). Latency
    is the median ms of ``repeats`` forward passes after ``warmup`` on the CPU and, when there is
    one, on the GPU; by default both are chosen so each measurement takes about half a second.
    Test accuracy is measured on ``device`` for both networks: compaction removes only units that
    emit zero, so they should agree (``accuracy_equal``). Both use the BatchNorm statistics
    ``model`` holds: at a run's end these are already the re-estimated ones
    (``pruning.bn_stats``), so the accuracy is the one the run reported, and ``compact`` carries
    them over. ``small`` is ``compact(model)`` when the caller has it already (compaction of a
    large network takes seconds).
    """
    device = torch.device(device)
    timing = {}
    if small is None:  # a caller that passes ``small`` timed its compaction itself
        start = time.perf_counter()
        small = compact(model, structure, input_shape=input_shape)
        timing["compact_seconds"] = time.perf_counter() - start
    dense_params, compact_params = _params(model), _params(small)
    dense_flops, compact_flops = _flops(model, input_shape), _flops(small, input_shape)
    pruned_accuracy = evaluate(model, data, device)["test_accuracy"]
    compact_accuracy = evaluate(small, data, device)["test_accuracy"]
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(device if device.type == "cuda" else torch.device("cuda"))
    latency = []
    for where in devices:
        dense_here, small_here = (copy.deepcopy(m).to(where) for m in (model, small))
        for batch in batch_sizes:
            times = {}
            for label, network in (("dense", dense_here), ("compact", small_here)):
                times[label] = _timed(network, input_shape, batch, where, repeats, warmup)
            latency.append({"device": where.type, "batch_size": batch,
                            "dense_ms": times["dense"], "compact_ms": times["compact"],
                            "speedup": times["dense"] / times["compact"]})
    return {
        "dense_params": dense_params, "compact_params": compact_params,
        "params_ratio": compact_params / dense_params,
        "dense_flops": dense_flops, "compact_flops": compact_flops,
        "flops_reduction": dense_flops / max(compact_flops, 1),
        "latency": latency,
        "pruned_test_accuracy": pruned_accuracy, "compact_test_accuracy": compact_accuracy,
        "accuracy_equal": pruned_accuracy == compact_accuracy,
        **timing,
    }


def _timed(model: nn.Module, input_shape, batch: int, device: torch.device,
           repeats: int | None, warmup: int | None) -> float:
    if repeats is None or warmup is None:
        once = measure_latency(model, input_shape, batch_size=batch, device=device, warmup=1,
                               repeats=1) / 1e3
        if repeats is None:
            repeats = int(min(max(_TIME_BUDGET / max(once, 1e-6), 3), 30))
        if warmup is None:
            warmup = 1 if once > 0.1 else 3
    return measure_latency(model, input_shape, batch_size=batch, device=device, warmup=warmup,
                           repeats=repeats)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def _flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    first = next(model.parameters())
    was_training = model.training
    counter = FlopCounterMode(display=False)
    try:
        model.eval()
        with counter:
            model(torch.zeros(1, *input_shape, dtype=first.dtype, device=first.device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
