"""Training-time augmentation for CIFAR as batched tensor operations on the data's device.

Random crops are padded with **black**: the value a raw pixel of 0 takes after the dataset's
normalisation, ``(0 − mean_c) / std_c`` per channel (:func:`black`), not the normalised zero
(which is the channel mean, a mid grey). Every dataset is normalised this way by
:func:`pruning.data.dataset.make_dataset` with its train set's per-channel mean and std: for
cifar10/cifar100 and mnist "raw 0" is a black pixel of the uint8 file; for digits it is the
blank value 0 of scikit-learn's 0..16 scale; for synthetic (Gaussian values, no pixels) it is the
generator's 0, i.e. "black" in its own units. Only cifar10 and cifar100 are augmented in
training (``Dataset.augment``); ``fill`` defaults to 0.0, the normalised zero, for callers that
pass no fill.

The result is a function of the input, ``fill`` and the generator's state alone, so training
stays a deterministic function of (seed, step).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Values = torch.Tensor | Sequence[float]


def black(mean: Values, std: Values) -> torch.Tensor:
    """Per-channel black, ``(0 − mean) / std``, shape ``(C,)`` in float32: computed with the same
    float32 operations :func:`pruning.data.dataset.make_dataset` applies to a pixel, so it equals
    bit for bit what a raw 0 becomes. ``mean`` and ``std`` may have any shape holding C values
    (e.g. the ``(1, C, 1, 1)`` of the normalisation)."""
    mean = torch.as_tensor(mean, dtype=torch.float32).flatten()
    std = torch.as_tensor(std, dtype=torch.float32).flatten()
    if mean.shape != std.shape:
        raise ValueError(f"mean has {mean.numel()} values but std has {std.numel()}")
    return (torch.zeros_like(mean) - mean) / std


def augment_batch(x: torch.Tensor, generator: torch.Generator, *, padding: int = 4,
                  fill: float | Sequence[float] | torch.Tensor = 0.0) -> torch.Tensor:
    """Random crop after padding with ``fill``, then random horizontal flip, independently per
    image.

    For image i with shifts ``dy_i, dx_i`` uniform in ``0..2*padding`` and a fair coin ``f_i``::

        out[i, c, r, s] = P[i, c, dy_i + r, dx_i + s']   with s' = W-1-s if f_i else s

    where ``P`` is ``x`` padded by ``padding`` on every side with ``fill[c]`` in channel c
    (``fill`` is one number for every channel or C numbers, e.g. :func:`black` of the dataset's
    normalisation). Pixels that come from ``x`` are copied unchanged. All draws (dy for the
    batch, then dx, then f) come from ``generator`` on the CPU and only the small index tensors
    move to ``x.device``, so the result is the same on any device for the same generator state;
    the draws do not depend on ``fill``.
    """
    if x.ndim != 4:
        raise ValueError(f"augment_batch expects (N, C, H, W); got shape {tuple(x.shape)}")
    if generator.device.type != "cpu":
        raise ValueError(f"augment_batch needs a CPU generator; got one on {generator.device}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0; got {padding}")
    n, channels, height, width = x.shape
    values = torch.as_tensor(fill, dtype=x.dtype, device=x.device).flatten()
    if values.numel() == 1:
        values = values.expand(channels)
    elif values.numel() != channels:
        raise ValueError(f"fill must be one value or one per channel ({channels}); got "
                         f"{values.numel()}")
    shift_y = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    shift_x = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5

    rows = shift_y[:, None] + torch.arange(height)
    cols = shift_x[:, None] + torch.arange(width)
    cols = torch.where(flip[:, None], cols.flip(1), cols)

    # One gather for the whole batch: the four index tensors broadcast to (N, C, H, W).
    device = x.device
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(channels, device=device)[None, :, None, None]
    rows = rows.to(device)[:, None, :, None]
    cols = cols.to(device)[:, None, None, :]
    padded = values.view(1, channels, 1, 1).expand(
        n, channels, height + 2 * padding, width + 2 * padding).clone()
    padded[:, :, padding:padding + height, padding:padding + width] = x
    return padded[batch, channel, rows, cols]
