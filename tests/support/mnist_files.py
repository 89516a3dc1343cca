"""Writes small MNIST sets in the real IDX format (plain or gzipped), for readers and scans."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

MNIST_FILES = {
    "train-images-idx3-ubyte": (2051, "train_x"),
    "train-labels-idx1-ubyte": (2049, "train_y"),
    "t10k-images-idx3-ubyte": (2051, "test_x"),
    "t10k-labels-idx1-ubyte": (2049, "test_y"),
}


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def mnist_arrays(seed: int = 0, train: int = 6, test: int = 3,
                 side: int = 28) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train_x": rng.integers(0, 256, size=(train, side, side), dtype=np.uint8),
        "train_y": rng.integers(0, 10, size=train, dtype=np.uint8),
        "test_x": rng.integers(0, 256, size=(test, side, side), dtype=np.uint8),
        "test_y": rng.integers(0, 10, size=test, dtype=np.uint8),
    }


def write_mnist(directory: Path, arrays: dict[str, np.ndarray], *, gz: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, (magic, key) in MNIST_FILES.items():
        payload = idx_bytes(magic, arrays[key])
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (directory / name).write_bytes(payload)
