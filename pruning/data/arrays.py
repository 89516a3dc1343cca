"""Checks for splits that arrive as arrays from outside (an npz file, a dataset plugin).

Every message names where the array came from (a file and key, or a plugin), so a user can find
the array at fault without reading our code.
"""

from __future__ import annotations

import numpy as np

from .dataset import DatasetError, RawSplits

SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")


def check_images(x: np.ndarray, where: str) -> None:
    """``x`` must be ``(N, C, H, W)`` of real numbers, finite where they are floats."""
    if x.ndim != 4:
        raise DatasetError(f"{where}: images must be (N, C, H, W); got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DatasetError(f"{where}: images must be uint8 (or other integers) or floats; got "
                           f"dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.floating) and x.size and not np.isfinite(x).all():
        raise DatasetError(f"{where}: images hold NaN or infinite values")


def check_labels(y: np.ndarray, where: str) -> np.ndarray:
    """``y`` as int64 ``(N,)``: integer class labels 0..K-1 (``(N, 1)``, as Keras saves them,
    is accepted too)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DatasetError(f"{where}: labels must be one integer per sample, shape (N,); got "
                           f"shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{where}: labels must be integers 0..K-1; got dtype {y.dtype}")
    if y.size and int(y.min()) < 0:
        raise DatasetError(f"{where}: labels must be integers 0..K-1; found {int(y.min())}")
    return y.astype(np.int64, copy=False)


def checked_splits(splits: RawSplits, where: dict[str, str]) -> tuple[RawSplits, int]:
    """The splits with int64 labels, and the number of classes (the largest label + 1).
    ``where`` names each of ``SPLIT_KEYS`` in messages (e.g. ``"data.npz, key x_train"``)."""
    train_x, train_y, test_x, test_y = splits
    check_images(train_x, where["x_train"])
    check_images(test_x, where["x_test"])
    train_y = check_labels(np.asarray(train_y), where["y_train"])
    test_y = check_labels(np.asarray(test_y), where["y_test"])
    for x, y, keys in ((train_x, train_y, ("x_train", "y_train")),
                       (test_x, test_y, ("x_test", "y_test"))):
        if len(x) != len(y):
            raise DatasetError(f"{where[keys[0]]} holds {len(x)} images but {where[keys[1]]} "
                               f"holds {len(y)} labels")
    if len(train_y) == 0:
        raise DatasetError(f"{where['x_train']}: holds no training images")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DatasetError(f"{where['x_train']} holds images of (C, H, W) {train_x.shape[1:]} "
                           f"but {where['x_test']} holds {test_x.shape[1:]}")
    labels = [int(y.max()) for y in (train_y, test_y) if y.size]
    num_classes = max(labels) + 1
    if num_classes < 2:
        raise DatasetError(f"{where['y_train']}: needs at least 2 classes; every label is 0")
    return RawSplits(train_x, train_y, test_x, test_y), num_classes
