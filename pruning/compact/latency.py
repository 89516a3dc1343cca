"""Inference latency: the median of repeated timed forward passes after a warm-up."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn


def measure_latency(model: nn.Module, input_shape: tuple[int, ...], *, batch_size: int,
                    device: torch.device | str, warmup: int = 3, repeats: int = 10) -> float:
    """Median milliseconds of ``model`` on one random batch of ``batch_size`` samples on
    ``device``, in eval mode under ``torch.inference_mode``. ``model`` should already be on
    ``device`` and is left in the mode it was in. On CUDA each pass is bracketed by a
    synchronize, so the time is the kernels' and not just their launch."""
    if repeats < 1 or warmup < 0 or batch_size < 1:
        raise ValueError(f"need repeats >= 1, warmup >= 0, batch_size >= 1; got {repeats}, "
                         f"{warmup}, {batch_size}")
    device = torch.device(device)
    dtype = next(model.parameters()).dtype
    inputs = torch.randn(batch_size, *input_shape, device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.inference_mode():
            for index in range(warmup + repeats):
                _synchronize(device)
                start = time.perf_counter()
                model(inputs)
                _synchronize(device)
                if index >= warmup:
                    times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return statistics.median(times) * 1e3


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
