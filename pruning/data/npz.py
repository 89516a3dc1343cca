"""``npz``: a data folder holding one NumPy ``.npz`` file with ``x_train``, ``y_train``,
``x_test`` and ``y_test``.

Images may be ``(N, C, H, W)``, ``(N, H, W, C)`` or ``(N, H, W)`` (one channel), uint8 or float;
labels integers 0..K-1, ``(N,)`` or ``(N, 1)``. The layout is read from ``x_train``: channels
last when its last side is 1, 3 or 4 and its second is not (``(N, 3, 32, 3)`` reads as channels
first). The facts a worker reports come from the arrays' headers inside the zip (and the labels,
to count the classes); the images are read only when a job loads them.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from pruneboard.spec.catalog import DatasetFacts

from .arrays import SPLIT_KEYS, checked_splits
from .dataset import DatasetError, RawSplits

PREFERRED_NAME = "data.npz"  # which file to read when a folder holds several
_CHANNEL_COUNTS = (1, 3, 4)


def find_npz(directory: Path) -> Path | None:
    """The ``.npz`` file of ``directory``: its only one, or ``data.npz`` among several; None
    when it holds none."""
    try:
        files = sorted(p for p in Path(directory).glob("*.npz")
                       if not p.name.startswith(".") and p.is_file())
    except OSError as error:
        raise DatasetError(f"{directory}: cannot be listed: {error.strerror or error}") from None
    if len(files) <= 1:
        return files[0] if files else None
    preferred = Path(directory) / PREFERRED_NAME
    if preferred in files:
        return preferred
    raise DatasetError(f"{directory} holds several .npz files ({', '.join(p.name for p in files)})"
                       f"; keep one, or name the one to read {PREFERRED_NAME}")


def channels_last(shape: tuple[int, ...]) -> bool:
    return len(shape) == 4 and shape[-1] in _CHANNEL_COUNTS and shape[1] not in _CHANNEL_COUNTS


def _as_nchw(x: np.ndarray, last: bool) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    return x.transpose(0, 3, 1, 2) if last and x.ndim == 4 else x


def _where(path: Path) -> dict[str, str]:
    return {key: f"{path}, key {key}" for key in SPLIT_KEYS}


def read_npz(path: Path) -> tuple[RawSplits, int]:
    """The four arrays of ``path`` as ``(N, C, H, W)`` splits, and the number of classes."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            _check_keys(path, list(archive.files))
            arrays = {key: archive[key] for key in SPLIT_KEYS}
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError) as error:
        # AttributeError: np.load returned a plain array (a .npy file named .npz), no .files.
        raise DatasetError(f"{path}: cannot be read as an .npz archive: {error}") from None
    where = _where(path)
    for key in ("x_train", "x_test"):
        _check_ndim(arrays[key].shape, where[key])
    last = channels_last(arrays["x_train"].shape)
    return checked_splits(RawSplits(_as_nchw(arrays["x_train"], last), arrays["y_train"],
                                    _as_nchw(arrays["x_test"], last), arrays["y_test"]),
                          where)


def npz_facts(path: Path) -> DatasetFacts:
    """What :func:`read_npz` would give, from the arrays' headers and the labels alone."""
    headers = _headers(path)
    where = _where(path)
    last = channels_last(headers["x_train"][0])
    samples = {}
    for key in ("x_train", "x_test"):
        shape, dtype = headers[key]
        _check_ndim(shape, where[key])
        if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
            raise DatasetError(f"{where[key]}: images must be uint8 (or other integers) or "
                               f"floats; got dtype {dtype}")
        samples[key] = (1, *shape[1:]) if len(shape) == 3 else (
            (shape[3], shape[1], shape[2]) if last else tuple(shape[1:]))
    try:
        with np.load(path, allow_pickle=False) as archive:
            labels = {key: archive[key] for key in ("y_train", "y_test")}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DatasetError(f"{path}: cannot be read as an .npz archive: {error}") from None
    # The same checks as a load, on stand-ins of the right lengths and sample shapes: no pixel
    # is read, yet the facts are exactly what a job's load would find.
    stand_in = {key: np.broadcast_to(np.zeros((), np.uint8),
                                     (headers[key][0][0], *samples[key]))
                for key in ("x_train", "x_test")}
    splits, num_classes = checked_splits(
        RawSplits(stand_in["x_train"], labels["y_train"], stand_in["x_test"], labels["y_test"]),
        where)
    channels, height, width = (int(d) for d in splits.train_x.shape[1:])
    return DatasetFacts((channels, height, width), num_classes, len(splits.train_y))


def _check_ndim(shape: tuple[int, ...], where: str) -> None:
    if len(shape) not in (3, 4):
        raise DatasetError(f"{where}: images must be (N, C, H, W), (N, H, W, C) or (N, H, W); "
                           f"got shape {shape}")


def _check_keys(path: Path, present: list[str]) -> None:
    missing = [key for key in SPLIT_KEYS if key not in present]
    if missing:
        raise DatasetError(f"{path}: has no {', '.join(missing)} (it holds "
                           f"{', '.join(present) or 'no arrays'}); an npz dataset needs "
                           f"{', '.join(SPLIT_KEYS)}")


def _headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of each split array, read from the .npy headers inside the zip (only the
    first bytes of each member are decompressed)."""
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            _check_keys(path, [name.removesuffix(".npy") for name in members])
            for key in SPLIT_KEYS:
                with archive.open(key + ".npy") as member:
                    version = np.lib.format.read_magic(member)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(member)
                headers[key] = (tuple(int(d) for d in shape), dtype)
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DatasetError(f"{path}: cannot be read as an .npz archive: {error}") from None
    return headers
