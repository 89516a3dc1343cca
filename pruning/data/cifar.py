"""Readers for the "python version" CIFAR-10 and CIFAR-100 archives, through a restricted unpickler.

Each file is a pickled dict (Python 2 era, so read with ``encoding="bytes"``) holding ``b"data"``,
a uint8 array ``(N, 3072)`` of 32x32 images stored channel-major (1024 red, 1024 green, 1024 blue
values, each row by row), and ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100), a list
of N ints.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import DatasetError, RawSplits

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2 has no numpy._core
    from numpy.core.multiarray import _reconstruct

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = ("test_batch",)
CIFAR100_DIR = "cifar-100-python"
CIFAR100_TRAIN = ("train",)
CIFAR100_TEST = ("test",)
_IMAGE_SHAPE = (3, 32, 32)


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``: Python 3 pickles bytes this way at protocol <= 2. Only the
    latin-1 form is accepted, so the global cannot be used to run an arbitrary codec."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


# The only globals a CIFAR batch refers to: numpy's array reconstruction (under its numpy 1 and
# numpy 2 module names), and the bytes encoding of pickles re-written by Python 3.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`_ALLOWED_GLOBALS`, so a crafted file cannot name a
    callable such as ``os.system`` for its ``__reduce__`` to run."""

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DatasetError(f"{self._path}: refusing to unpickle {module}.{name}") from None


def load_batch(path: Path, labels_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file as uint8 images ``(N, 3, 32, 32)`` and int64 labels ``(N,)``."""
    try:
        with path.open("rb") as file:
            batch = _RestrictedUnpickler(file, path).load()
    except DatasetError:
        raise
    except Exception as exc:  # a corrupt pickle can fail in many ways; all mean "malformed"
        raise DatasetError(f"{path}: not a readable CIFAR pickle: {exc!r}") from exc
    if not isinstance(batch, dict):
        raise DatasetError(f"{path}: expected a pickled dict, found {type(batch).__name__}")
    # Python 2 files give bytes keys under encoding="bytes"; accept str keys from re-pickled ones.
    batch = {key.decode("latin1") if isinstance(key, bytes) else key: v for key, v in batch.items()}
    for key in ("data", labels_key):
        if key not in batch:
            raise DatasetError(f"{path}: missing key {key!r}; found {sorted(map(str, batch))}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DatasetError(f"{path}: 'data' must be a 2-d uint8 array")
    if data.shape[1] != int(np.prod(_IMAGE_SHAPE)):
        raise DatasetError(f"{path}: 'data' rows have {data.shape[1]} values, expected 3072")
    try:
        labels = np.asarray(batch[labels_key], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: {labels_key!r} is not a list of ints") from exc
    if labels.shape != (len(data),):
        raise DatasetError(
            f"{path}: {len(data)} images but {labels_key!r} has shape {labels.shape}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"{path}: {labels_key!r} has values outside 0..{num_classes - 1}")
    return data.reshape(-1, *_IMAGE_SHAPE), labels


def _read(
    name: str,
    directories: list[Path],
    files: tuple[tuple[str, ...], tuple[str, ...]],
    labels_key: str,
    num_classes: int,
) -> RawSplits:
    train_files, test_files = files
    wanted = train_files + test_files
    for directory in directories:
        if all((directory / file).is_file() for file in wanted):
            break
    else:
        raise DatasetError(
            f"{name}: expected {', '.join(wanted)} in one of: "
            f"{', '.join(str(d) for d in directories)}"
        )
    splits = []
    for group in (train_files, test_files):
        parts = [load_batch(directory / file, labels_key, num_classes) for file in group]
        splits += [np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])]
    return RawSplits(*splits)


def read_cifar10(data_dir: Path) -> RawSplits:
    """CIFAR-10 from ``data_dir/cifar-10-batches-py`` or ``data_dir`` itself."""
    return _read(
        "cifar10", [data_dir / CIFAR10_DIR, data_dir], (CIFAR10_TRAIN, CIFAR10_TEST), "labels", 10
    )


def read_cifar100(data_dir: Path) -> RawSplits:
    """CIFAR-100 (fine labels) from ``data_dir/cifar-100-python`` or ``data_dir`` itself."""
    return _read(
        "cifar100",
        [data_dir / CIFAR100_DIR, data_dir],
        (CIFAR100_TRAIN, CIFAR100_TEST),
        "fine_labels",
        100,
    )
