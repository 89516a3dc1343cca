"""The in-memory dataset every reader returns, and the normalisation they share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch

from .augment import black as black_level


class DatasetError(ValueError):
    """A dataset cannot be loaded: unknown name, missing or malformed files, bad arguments."""


class RawSplits(NamedTuple):
    """What a file reader returns before normalisation: images ``(N, C, H, W)`` as stored on disk
    (uint8 for the file formats) and int64 labels ``(N,)``."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


# eq=False: the generated __eq__ would compare tensors elementwise and fail on bool().
@dataclass(frozen=True, eq=False)
class Dataset:
    """A whole dataset as tensors: float32 images ``(N, C, H, W)`` normalised per channel with the
    train set's mean and std, int64 labels ``(N,)``. ``augment`` says whether training should apply
    :func:`pruning.data.augment_batch` (random crop and flip)."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    augment: bool
    black: torch.Tensor  # (C,) what a raw 0 pixel becomes after normalising: the crop padding

    @property
    def input_shape(self) -> tuple[int, int, int]:
        channels, height, width = self.train_x.shape[1:]
        return int(channels), int(height), int(width)

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with all four tensors on ``device``; small datasets live whole on the device."""
        return replace(
            self,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            test_x=self.test_x.to(device),
            test_y=self.test_y.to(device),
            black=self.black.to(device),
        )


def make_dataset(
    name: str, splits: RawSplits, *, num_classes: int, augment: bool = False,
    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
) -> Dataset:
    """Convert raw splits to a :class:`Dataset`, normalising ``x -> (x - mean_c) / std_c`` with the
    per-channel mean and (population) std of the train images, applied to both splits. ``mean``
    and ``std``: those statistics already known (an image folder's cache stores them), which
    saves a pass over the train images."""
    # torch.tensor copies while converting, so read-only buffers (np.frombuffer, a read-only
    # memory map) are fine.
    train_x = torch.tensor(splits.train_x, dtype=torch.float32)
    test_x = torch.tensor(splits.test_x, dtype=torch.float32)
    if mean is not None and std is not None:
        mean = torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
    else:
        var, mean = torch.var_mean(train_x, dim=(0, 2, 3), correction=0, keepdim=True)
        std = var.sqrt()
    # A constant channel carries no information; leave its scale alone rather than divide by ~0.
    std = torch.where(std > 0, std, torch.ones_like(std))
    # In place: for CIFAR the float copies are the big allocation, so avoid making two more.
    train_x.sub_(mean).div_(std)
    test_x.sub_(mean).div_(std)
    return Dataset(
        name=name,
        train_x=train_x,
        train_y=torch.tensor(splits.train_y, dtype=torch.int64),
        test_x=test_x,
        test_y=torch.tensor(splits.test_y, dtype=torch.int64),
        num_classes=num_classes,
        augment=augment,
        black=black_level(mean.flatten(), std.flatten()),
    )
