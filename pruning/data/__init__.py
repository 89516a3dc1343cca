"""Dataset readers: every dataset is loaded whole into tensors, normalised per channel.

``digits`` and ``synthetic`` need no files. ``mnist`` (IDX files), ``cifar10`` and ``cifar100``
(python pickles, read with a restricted unpickler), ``imagefolder`` (class folders of PNG/JPEG
files, decoded once into a cache beside them) and ``npz`` (one NumPy archive) are read from
``data_dir``; nothing is downloaded. A name that is none of these is looked up among the
worker's dataset plugins (``pruning.plugins``). ``facts`` finds the dataset folders under a
worker's data roots and what they hold.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from pruneboard.spec.catalog import DATASETS
from pruning.plugins import dataset_plugins

from .arrays import SPLIT_KEYS, checked_splits
from .augment import augment_batch
from .builtin import make_synthetic, read_digits
from .cifar import CIFAR10_DIR, CIFAR100_DIR, read_cifar10, read_cifar100
from .dataset import Dataset, DatasetError, RawSplits, make_dataset
from .facts import folder_facts, resolve_data_dir, scan_data_roots
from .imagefolder import progress_lines, read_imagefolder
from .mnist import expected_files as mnist_files
from .mnist import read_mnist
from .npz import find_npz, read_npz

__all__ = [
    "DATASET_NAMES",
    "Dataset",
    "DatasetError",
    "RawSplits",
    "augment_batch",
    "folder_facts",
    "load_dataset",
    "progress_lines",
    "read_cifar10",
    "read_cifar100",
    "read_digits",
    "read_imagefolder",
    "read_mnist",
    "read_npz",
    "resolve_data_dir",
    "scan_data_roots",
]

DATASET_NAMES = DATASETS  # the job spec's names (torch-free)

_EXPECTED_FILES = {
    "mnist": ", ".join(mnist_files()),
    "cifar10": f"{CIFAR10_DIR}/data_batch_1..5 and {CIFAR10_DIR}/test_batch",
    "cifar100": f"{CIFAR100_DIR}/train and {CIFAR100_DIR}/test",
    "imagefolder": "train/<class>/*.png|jpg and test/<class>/ (or val/<class>/)",
    "npz": "one .npz file with x_train, y_train, x_test and y_test",
}


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    seed: int = 0,
    synthetic_shape: tuple[int, int, int] = (1, 8, 8),
    synthetic_classes: int = 10,
    synthetic_size: int = 2048,
    image_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Dataset:
    """Load ``name`` on the CPU. ``data_dir`` is needed by the folder datasets; ``seed`` and the
    ``synthetic_*`` arguments only affect ``synthetic`` (the other splits are fixed) and a
    plugin's. ``image_size`` resizes an image folder's images to that side; ``progress(done,
    total)`` is called while an image folder is decoded into its cache (not when it is
    cached)."""
    if image_size is not None and name != "imagefolder":
        raise DatasetError(f"image_size is read only by imagefolder, not {name}")
    if name not in DATASET_NAMES:
        return _plugin_dataset(name, data_dir, seed)
    if name == "digits":
        return make_dataset(name, read_digits(), num_classes=10)
    if name == "synthetic":
        splits = make_synthetic(synthetic_shape, synthetic_classes, synthetic_size, seed)
        return make_dataset(name, splits, num_classes=synthetic_classes)

    if data_dir is None:
        raise DatasetError(
            f"{name} is read from files: pass data_dir (--data-dir on the command line) "
            f"pointing at a folder holding {_EXPECTED_FILES[name]}"
        )
    directory = Path(data_dir).expanduser()
    if not directory.is_dir():
        raise DatasetError(
            f"{name}: data directory {directory} does not exist; "
            f"it should hold {_EXPECTED_FILES[name]}"
        )
    if name == "mnist":
        return make_dataset(name, read_mnist(directory), num_classes=10)
    if name == "cifar10":
        return make_dataset(name, read_cifar10(directory), num_classes=10, augment=True)
    if name == "cifar100":
        return make_dataset(name, read_cifar100(directory), num_classes=100, augment=True)
    if name == "npz":
        path = find_npz(directory)
        if path is None:
            raise DatasetError(f"npz: {directory} holds no .npz file; it should hold "
                               f"{_EXPECTED_FILES['npz']}")
        splits, num_classes = read_npz(path)
        return make_dataset(name, splits, num_classes=num_classes)
    # Not augmented: random crops and flips suit CIFAR-like photos, not any image folder.
    splits, meta = read_imagefolder(directory, image_size=image_size, progress=progress)
    return make_dataset(name, splits, num_classes=len(meta["classes"]), mean=meta["mean"],
                        std=meta["std"])


def _plugin_dataset(name: str, data_dir: str | Path | None, seed: int) -> Dataset:
    plugins = dataset_plugins()
    if name not in plugins:
        installed = ", ".join(sorted(plugins)) or "none installed"
        raise DatasetError(f"unknown dataset {name!r}; built in: {', '.join(DATASET_NAMES)}; "
                           f"from plugins: {installed}")
    try:
        splits = plugins[name](Path(data_dir).expanduser() if data_dir else None, seed)
    except DatasetError:
        raise
    except Exception as error:  # the plugin's own code: the job fails, the worker goes on
        raise DatasetError(f"plugin dataset {name!r} failed: {type(error).__name__}: "
                           f"{error}") from error
    if not isinstance(splits, tuple) or len(splits) != 4:
        raise DatasetError(f"plugin dataset {name!r} must return RawSplits(train_x, train_y, "
                           f"test_x, test_y); it returned a {type(splits).__name__}")
    where = {key: f"plugin dataset {name!r}, {key}" for key in SPLIT_KEYS}
    arrays = RawSplits(*(np.asarray(a) for a in splits))
    checked, num_classes = checked_splits(arrays, where)
    return make_dataset(name, checked, num_classes=num_classes)
