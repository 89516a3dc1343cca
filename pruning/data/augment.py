"""Training-time augmentation for CIFAR as batched tensor operations on the data's device."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_batch(x: torch.Tensor, generator: torch.Generator, *, padding: int = 4) -> torch.Tensor:
    """Random crop after zero padding, then random horizontal flip, independently per image.

    For image i with shifts ``dy_i, dx_i`` uniform in ``0..2*padding`` and a fair coin ``f_i``::

        out[i, c, r, s] = P[i, c, dy_i + r, dx_i + s']   with s' = W-1-s if f_i else s

    where ``P`` is ``x`` zero-padded by ``padding`` on every side. ``x`` is already normalised, so
    the zeros are the channel means. All draws (dy for the batch, then dx, then f) come from
    ``generator`` on the CPU and only the small index tensors move to ``x.device``, so the result
    is the same on any device for the same generator state.
    """
    if x.ndim != 4:
        raise ValueError(f"augment_batch expects (N, C, H, W); got shape {tuple(x.shape)}")
    if generator.device.type != "cpu":
        raise ValueError(f"augment_batch needs a CPU generator; got one on {generator.device}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0; got {padding}")
    n, channels, height, width = x.shape
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
    padded = F.pad(x, (padding, padding, padding, padding))
    return padded[batch, channel, rows, cols]
