"""Writes small CIFAR batches in the real python-pickle format, for readers and training tests."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def cifar_batch(rng: np.random.Generator, size: int, labels_key: bytes, classes: int) -> dict:
    return {
        b"batch_label": b"testing batch",
        b"data": rng.integers(0, 256, size=(size, 3072), dtype=np.uint8),
        labels_key: [int(v) for v in rng.integers(0, classes, size=size)],
    }


def write_pickle(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar10(directory: Path, seed: int = 0, per_batch: int = 3) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {name: cifar_batch(rng, per_batch, b"labels", 10) for name in names}
    for name, batch in batches.items():
        write_pickle(directory / name, batch)
    return batches


def write_cifar100(directory: Path, seed: int = 0, train: int = 4,
                   test: int = 2) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    batches = {"train": cifar_batch(rng, train, b"fine_labels", 100),
               "test": cifar_batch(rng, test, b"fine_labels", 100)}
    for name, batch in batches.items():
        batch[b"coarse_labels"] = [0] * len(batch[b"fine_labels"])
        write_pickle(directory / name, batch)
    return batches
