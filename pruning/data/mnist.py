"""Reader for MNIST in its original IDX files (gzipped or not).

IDX layout: a big-endian uint32 magic ``0x0000TTDD`` (TT the element type, 0x08 for uint8; DD the
number of dimensions), then DD big-endian int32 sizes, then the elements in C order. Images use
magic 2051 (uint8, 3 dims: count, rows, cols); labels 2049 (uint8, 1 dim: count).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .dataset import DatasetError, RawSplits

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
NUM_CLASSES = 10
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def candidate_dirs(data_dir: Path) -> list[Path]:
    """Where the files may sit: the directory itself or torchvision's and common sub-folders."""
    return [data_dir, data_dir / "MNIST" / "raw", data_dir / "mnist"]


def expected_files() -> list[str]:
    return [f"{name}[.gz]" for name in FILES.values()]


def find_file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one uint8 IDX file and check its magic number and that its length matches its header."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    if len(raw) < 4:
        raise DatasetError(f"{path}: {len(raw)} bytes is too short for an IDX header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DatasetError(f"{path}: IDX magic number is {found}, expected {magic}")
    ndim = magic & 0xFF
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DatasetError(f"{path}: header needs {header_len} bytes; the file has {len(raw)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    if any(d < 0 for d in dims):
        raise DatasetError(f"{path}: negative size in IDX header {dims}")
    body_len = len(raw) - header_len
    if body_len != int(np.prod(dims)):
        raise DatasetError(
            f"{path}: header sizes {dims} need {int(np.prod(dims))} bytes of data; "
            f"the file has {body_len}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC).astype(np.int64)
    if len(images) == 0:
        raise DatasetError(f"{images_path}: holds no images")
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    if len(labels) and labels.max() >= NUM_CLASSES:
        raise DatasetError(
            f"{labels_path}: label {int(labels.max())} is outside 0..{NUM_CLASSES - 1}"
        )
    return images[:, None, :, :], labels


def read_mnist(data_dir: Path) -> RawSplits:
    """Find the four IDX files under ``data_dir`` and read them as uint8 ``(N, 1, H, W)`` images
    and int64 labels."""
    searched = candidate_dirs(data_dir)
    for directory in searched:
        paths = {key: find_file(directory, name) for key, name in FILES.items()}
        if all(path is not None for path in paths.values()):
            break
    else:
        raise DatasetError(
            f"mnist: expected {', '.join(expected_files())} in one of: "
            f"{', '.join(str(d) for d in searched)}"
        )
    train_x, train_y = _read_pair(paths["train_images"], paths["train_labels"])
    test_x, test_y = _read_pair(paths["test_images"], paths["test_labels"])
    return RawSplits(train_x, train_y, test_x, test_y)
