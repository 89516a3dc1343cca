"""Datasets that need no files: scikit-learn's bundled 8x8 digits, and seeded synthetic images."""

from __future__ import annotations

import numpy as np
import torch

from .dataset import DatasetError, RawSplits

DIGITS_TEST_SIZE = 360


def read_digits() -> RawSplits:
    """The 1797 8x8 digits of ``sklearn.datasets.load_digits`` (pixel values 0..16) as
    ``(N, 1, 8, 8)`` float arrays, split 1437 train / 360 test, stratified by class.

    The split is fixed (``random_state=0``), not drawn from the run's seed, so runs with different
    seeds are scored on the same test images.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32)[:, None, :, :]
    labels = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=DIGITS_TEST_SIZE, stratify=labels, random_state=0
    )
    return RawSplits(train_x, train_y, test_x, test_y)


def make_synthetic(
    shape: tuple[int, int, int], num_classes: int, train_size: int, seed: int
) -> RawSplits:
    """Class-conditional Gaussians: ``x = m_y + e`` with one mean image ``m_k ~ N(0, I)`` drawn per
    class and noise ``e ~ N(0, I)``; ``train_size`` train and ``train_size // 4`` test samples,
    classes balanced (round-robin, then shuffled). Everything is drawn from ``seed``.

    Two class means differ by about ``sqrt(2 C H W)`` against unit noise, so a model can learn the
    task, yet the noise keeps individual samples imperfect.
    """
    check_synthetic(shape, num_classes, train_size)
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(num_classes, *shape, generator=generator)

    def draw(size: int) -> tuple[np.ndarray, np.ndarray]:
        labels = (torch.arange(size) % num_classes)[torch.randperm(size, generator=generator)]
        noise = torch.randn(size, *shape, generator=generator)
        return (means[labels] + noise).numpy(), labels.numpy()

    train_x, train_y = draw(train_size)
    test_x, test_y = draw(train_size // 4)
    return RawSplits(train_x, train_y, test_x, test_y)


def check_synthetic(shape: tuple[int, int, int], num_classes: int, train_size: int) -> None:
    """Raise DatasetError unless ``make_synthetic`` can draw a dataset of these sizes."""
    if len(shape) != 3 or any(int(d) != d or d < 1 for d in shape):
        raise DatasetError(f"synthetic_shape must be (C, H, W) of positive ints; got {shape!r}")
    if num_classes < 2:
        raise DatasetError(f"synthetic_classes must be >= 2; got {num_classes}")
    if train_size < max(num_classes, 4):
        raise DatasetError(
            f"synthetic_size must be >= max(synthetic_classes, 4) = {max(num_classes, 4)}; "
            f"got {train_size}"
        )
