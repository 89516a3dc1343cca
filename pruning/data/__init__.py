"""Dataset readers: every dataset is loaded whole into tensors, normalised per channel.

``digits`` and ``synthetic`` need no files. ``mnist`` (IDX files), ``cifar10`` and ``cifar100``
(python pickles, read with a restricted unpickler) are read from ``data_dir``; nothing is
downloaded. ``facts`` finds the dataset folders under a worker's data roots and what they hold.
"""

from __future__ import annotations

from pathlib import Path

from pruneboard.spec.catalog import DATASETS

from .augment import augment_batch
from .builtin import make_synthetic, read_digits
from .cifar import CIFAR10_DIR, CIFAR100_DIR, read_cifar10, read_cifar100
from .dataset import Dataset, DatasetError, RawSplits, make_dataset
from .facts import folder_facts, resolve_data_dir, scan_data_roots
from .mnist import expected_files as mnist_files
from .mnist import read_mnist

__all__ = [
    "DATASET_NAMES",
    "Dataset",
    "DatasetError",
    "RawSplits",
    "augment_batch",
    "folder_facts",
    "load_dataset",
    "read_cifar10",
    "read_cifar100",
    "read_digits",
    "read_mnist",
    "resolve_data_dir",
    "scan_data_roots",
]

DATASET_NAMES = DATASETS  # the job spec's names (torch-free)

_EXPECTED_FILES = {
    "mnist": ", ".join(mnist_files()),
    "cifar10": f"{CIFAR10_DIR}/data_batch_1..5 and {CIFAR10_DIR}/test_batch",
    "cifar100": f"{CIFAR100_DIR}/train and {CIFAR100_DIR}/test",
}


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    seed: int = 0,
    synthetic_shape: tuple[int, int, int] = (1, 8, 8),
    synthetic_classes: int = 10,
    synthetic_size: int = 2048,
) -> Dataset:
    """Load ``name`` on the CPU. ``data_dir`` is needed by mnist, cifar10 and cifar100; ``seed``
    and the ``synthetic_*`` arguments only affect ``synthetic`` (the other splits are fixed)."""
    if name not in DATASET_NAMES:
        raise DatasetError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}")
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
    return make_dataset(name, read_cifar100(directory), num_classes=100, augment=True)
