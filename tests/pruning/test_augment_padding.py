"""Random crops are padded with black, per channel, and the pixels inside stay unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pruning.data import augment_batch
from pruning.data.augment import black
from pruning.data.dataset import RawSplits, make_dataset

PAD = 4


def old_augment_batch(x, generator, padding=4):
    """The implementation before ``fill`` existed (zero padding), verbatim in substance."""
    n, channels, height, width = x.shape
    shift_y = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    shift_x = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = shift_y[:, None] + torch.arange(height)
    cols = shift_x[:, None] + torch.arange(width)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(n)[:, None, None, None]
    channel = torch.arange(channels)[None, :, None, None]
    padded = F.pad(x, (padding, padding, padding, padding))
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def draws(seed, n, padding=PAD):
    generator = torch.Generator().manual_seed(seed)
    shift_y = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    shift_x = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    return shift_y, shift_x, flip


def check_crops(x, out, fill, seed):
    """Every output pixel is either the source pixel its crop position names, unchanged, or (on
    the padded border) exactly ``fill[c]``; returns how many border pixels there were."""
    n, channels, height, width = x.shape
    shift_y, shift_x, flip = draws(seed, n)
    border = 0
    for i in range(n):
        for r in range(height):
            for s in range(width):
                column = width - 1 - s if flip[i] else s
                source_r = int(shift_y[i]) + r - PAD
                source_s = int(shift_x[i]) + column - PAD
                inside = 0 <= source_r < height and 0 <= source_s < width
                for c in range(channels):
                    if inside:
                        assert out[i, c, r, s].item() == x[i, c, source_r, source_s].item()
                    else:
                        assert out[i, c, r, s].item() == fill[c].item()
                        border += 1
    return border


def test_the_border_is_the_fill_of_each_channel_and_the_inside_is_unchanged():
    x = torch.randn(24, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    fill = torch.tensor([-1.9886, -1.9328, -1.7074])  # CIFAR-10's black, roughly
    out = augment_batch(x, torch.Generator().manual_seed(5), fill=fill)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert check_crops(x, out, fill, seed=5) > 0
    # The draws do not depend on the fill: the zero-padded output differs on the border only.
    zero = augment_batch(x, torch.Generator().manual_seed(5))
    border = out == fill.view(1, 3, 1, 1)
    assert torch.equal(out[~border], zero[~border])
    assert (zero[border] == 0).all()


def test_the_default_fill_is_bit_for_bit_the_old_zero_padding():
    x = torch.randn(32, 3, 12, 10)
    for seed in (0, 1, 2):
        new = augment_batch(x, torch.Generator().manual_seed(seed))
        old = old_augment_batch(x, torch.Generator().manual_seed(seed))
        assert torch.equal(new, old)


def test_one_number_fills_every_channel_and_a_wrong_count_is_refused():
    x = torch.randn(8, 2, 5, 5)
    one = augment_batch(x, torch.Generator().manual_seed(3), fill=-0.5)
    each = augment_batch(x, torch.Generator().manual_seed(3), fill=[-0.5, -0.5])
    assert torch.equal(one, each)
    check_crops(x, one, torch.tensor([-0.5, -0.5]), seed=3)
    with pytest.raises(ValueError, match=r"one per channel \(2\); got 3"):
        augment_batch(x, torch.Generator(), fill=[0.0, 1.0, 2.0])


def test_augmentation_stays_a_function_of_the_generator_state():
    x = torch.randn(16, 3, 8, 8)
    fill = torch.tensor([-2.0, -1.0, -0.5])
    first = augment_batch(x, torch.Generator().manual_seed(7), fill=fill)
    again = augment_batch(x, torch.Generator().manual_seed(7), fill=fill)
    other = augment_batch(x, torch.Generator().manual_seed(8), fill=fill)
    assert torch.equal(first, again) and not torch.equal(first, other)


def normalisation(raw: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and std make_dataset normalises with (its own computation, repeated)."""
    var, mean = torch.var_mean(torch.tensor(raw, dtype=torch.float32), dim=(0, 2, 3),
                               correction=0, keepdim=True)
    std = var.sqrt()
    return mean, torch.where(std > 0, std, torch.ones_like(std))


def test_black_is_exactly_what_a_raw_zero_pixel_becomes():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (20, 3, 8, 8), dtype=np.uint8)
    train[:, 2] = 77  # a constant channel: std 1, so black is −77
    train[:, :2, 0, 0] = 0  # a black pixel in every image, in the other channels
    labels = rng.integers(0, 10, 20)
    data = make_dataset("cifar10", RawSplits(train, labels, train[:4], labels[:4]),
                        num_classes=10, augment=True)
    level = black(*normalisation(train))
    assert level.shape == (3,) and level.dtype == torch.float32
    assert torch.equal(data.train_x[:, :2, 0, 0], level[:2].expand(20, 2))
    assert level[2].item() == -77.0 and (data.train_x[:, 2] == 0).all()
    assert (level[:2] < 0).all()  # black is below the mean
    out = augment_batch(data.train_x, torch.Generator().manual_seed(1), fill=level)
    assert check_crops(data.train_x, out, level, seed=1) > 0


def test_black_checks_its_arguments():
    assert torch.equal(black([0.5], [0.25]), torch.tensor([-2.0]))
    with pytest.raises(ValueError, match="mean has 2 values but std has 3"):
        black([0.1, 0.2], [1.0, 1.0, 1.0])
