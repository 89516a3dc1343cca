"""``imagefolder``: images sorted into one folder per class.

Layout: ``DIR/train/<class>/*.png|jpg|jpeg`` and the test images in ``DIR/test/<class>/``, or
else ``DIR/val/<class>/``; without either, a fixed 10 % of each class (at least one image of a
class with two or more) is held out of train as the test set, drawn from a seed that is not
the run's, so every run of the folder is scored on the same images. Classes are the train
folder's sub-folders in name order (label 0 the first); a test folder may lack a class but not
add one. Hidden files and folders and files of other types are ignored.

Images are decoded once with Pillow into a memory-mapped uint8 cache (``pruning.data.cache``)
together with the train set's per-channel mean and std. Channels are kept: the first train
image's mode decides (grayscale 1, grayscale+alpha 2, colour 3, colour+alpha 4) and every image
is converted to it. ``image_size`` resizes every image to that side (bilinear, aspect ratio not
kept); without it all images must have the first one's size.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import cache
from .dataset import DatasetError, RawSplits

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (images decoded, images to decode)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TEST_FOLDERS = ("test", "val")  # the first present is the test set
HOLDOUT_SHARE = 0.1
_CHUNK = 256  # images decoded between progress reports (and per batch of threads)
_GRAY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def progress_lines(say: Callable[[str], None], *, every_s: float = 5.0) -> Progress:
    """A ``progress`` callback that turns decoding progress into a line for ``say`` at most
    every ``every_s`` seconds, plus the first and the last: what a service job's log shows
    while its image folder is decoded (a bar would be one line per image there)."""
    last = -float("inf")

    def progress(done: int, total: int) -> None:
        nonlocal last
        moment = time.monotonic()
        if done in (0, total) or moment - last >= every_s:
            last = moment
            say(f"decoding images into the dataset cache: {done}/{total}")

    return progress


def holdout_count(size: int) -> int:
    """Images of a class of ``size`` held out as test images when the folder has no test set."""
    return 0 if size < 2 else max(1, round(size * HOLDOUT_SHARE))


@dataclass(frozen=True)
class Layout:
    """The files of an image folder, each with its label, split into train and test."""

    classes: tuple[str, ...]
    train: tuple[tuple[str, int], ...]  # (file path, label)
    test: tuple[tuple[str, int], ...]
    split: str  # where the test images come from: "test", "val" or "held out of train"


def list_files(directory: Path) -> dict[str, dict[str, list[str]]] | None:
    """``{split folder: {class: sorted image file paths}}`` of ``DIR/train`` and the test folder,
    empty classes included; None when ``DIR/train`` is not a folder. Lists, never opens a file.
    Paths are plain strings: a worker's rescan lists every file of every image folder, and
    building Path objects would cost most of its time."""
    directory = str(directory)
    if not os.path.isdir(os.path.join(directory, "train")):
        return None
    listing = {"train": _classes(os.path.join(directory, "train"))}
    for name in TEST_FOLDERS:
        if os.path.isdir(os.path.join(directory, name)):
            listing[name] = _classes(os.path.join(directory, name))
            break
    return listing


def _classes(folder: str) -> dict[str, list[str]]:
    found = {}
    for entry in sorted(_visible(folder), key=lambda e: e.name):
        if entry.is_dir():
            found[entry.name] = [os.path.join(entry.path, name) for name in sorted(
                f.name for f in _visible(entry.path)
                if f.name.lower().endswith(IMAGE_SUFFIXES) and f.is_file())]
    return found


def _visible(folder: str) -> list[os.DirEntry]:
    with os.scandir(folder) as entries:
        return [entry for entry in entries if not entry.name.startswith(".")]


def layout(directory: Path, listing: dict[str, dict[str, list[str]]] | None = None) -> Layout:
    """The train and test files of ``directory``; DatasetError naming the folder at fault."""
    directory = Path(directory)
    listing = listing if listing is not None else list_files(directory)
    if listing is None:
        raise DatasetError(f"{directory} is not an image folder: expected "
                           f"{directory / 'train'}/<class>/*.png|jpg")
    train = listing["train"]
    for split, classes in listing.items():
        if not classes:
            raise DatasetError(f"{directory / split} has no class folders "
                               f"({directory / split}/<class>/*.png|jpg)")
        for name, files in classes.items():
            if name not in train:
                raise DatasetError(f"{directory / split / name} is not a class of "
                                   f"{directory / 'train'} (classes: {', '.join(train)})")
            if not files:
                raise DatasetError(f"class folder {directory / split / name} holds no "
                                   f"{'/'.join(IMAGE_SUFFIXES)} images")
    if len(train) < 2:
        raise DatasetError(f"{directory / 'train'} holds one class folder; a classifier needs "
                           f"at least 2")
    labels = {name: label for label, name in enumerate(train)}
    test_name = next((name for name in TEST_FOLDERS if name in listing), None)
    if test_name is not None:
        return Layout(tuple(train), _labelled(train, labels),
                      _labelled(listing[test_name], labels), test_name)
    kept, held = [], []
    for name, files in train.items():
        # Seeded by the class name: adding a class leaves the others' held-out images alone.
        order = np.random.default_rng(zlib.crc32(name.encode())).permutation(len(files))
        cut = holdout_count(len(files))
        held += [(files[i], labels[name]) for i in sorted(order[:cut])]
        kept += [(files[i], labels[name]) for i in sorted(order[cut:])]
    if not held:
        raise DatasetError(f"{directory / 'train'} has too few images to hold out a test set "
                           f"(one per class); add {directory / 'test'}/<class>/ folders")
    return Layout(tuple(train), tuple(kept), tuple(held), "held out of train")


def _labelled(classes: dict[str, list[str]], labels: dict[str, int]
              ) -> tuple[tuple[str, int], ...]:
    return tuple((path, labels[name]) for name, files in classes.items() for path in files)


def target_mode(mode: str) -> str:
    """The Pillow mode every image is converted to when the first one has ``mode``."""
    if mode in _GRAY_MODES:
        return "L"
    if mode in ("LA", "La"):
        return "LA"
    return "RGBA" if mode in ("RGBA", "RGBa", "PA") else "RGB"


def read_header(path: str | Path) -> tuple[str, tuple[int, int]]:
    """Mode and (width, height) of image ``path``, from its header alone."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.mode, image.size
    except Exception as error:  # Pillow fails in many ways on a bad file; all mean "corrupt"
        raise DatasetError(f"{path}: not a readable image: {error}") from None


def read_imagefolder(directory: Path, *, image_size: int | None = None,
                     progress: Progress | None = None) -> tuple[RawSplits, dict]:
    """The splits of ``directory`` (uint8 ``(N, C, H, W)`` images, memory-mapped from the cache)
    and the cache's meta: ``classes``, ``mean`` and ``std`` per channel of the train images
    (0..255 scale), ``split``. Decodes only when no cache of the current files exists."""
    if image_size is not None and (int(image_size) != image_size or image_size < 1):
        raise DatasetError(f"image_size must be a positive number of pixels; got {image_size!r}")
    directory = Path(directory)
    found = layout(directory)
    files = found.train + found.test
    try:
        stats = [os.stat(path) for path, _ in files]
    except OSError as error:
        raise DatasetError(f"{error.filename}: cannot be read: {error.strerror}") from None
    # Names relative to the folder: a moved or re-mounted folder keeps its cache.
    source = [[os.path.relpath(path, directory), label, st.st_size, st.st_mtime_ns]
              for (path, label), st in zip(files, stats, strict=True)]
    key = cache.cache_key([len(found.train), source], f"s{image_size}" if image_size else "own")
    cached = cache.load(directory, key)
    if cached is not None:
        return cached
    return cache.build(directory, key,
                       lambda folder: _decode_all(directory, found, image_size, progress, folder))


def _decode_all(directory: Path, found: Layout, image_size: int | None,
                progress: Progress | None, folder: Path) -> dict:
    first_path = found.train[0][0]
    first_mode, first_size = read_header(first_path)
    mode = target_mode(first_mode)
    width, height = (image_size, image_size) if image_size else first_size
    channels = len(mode)  # L, LA, RGB, RGBA: one letter per band
    total = len(found.train) + len(found.test)
    started = time.perf_counter()
    log.info("decoding the %d images of %s into a cache", total, directory)
    done = 0
    report = progress or (lambda done, total: None)
    report(0, total)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for split, items in (("train", found.train), ("test", found.test)):
            images = np.lib.format.open_memmap(folder / f"{split}_x.npy", mode="w+",
                                               dtype=np.uint8,
                                               shape=(len(items), channels, height, width))
            for start in range(0, len(items), _CHUNK):
                chunk = [path for path, _ in items[start:start + _CHUNK]]
                decoded = pool.map(lambda path: _decode(path, mode, (width, height),
                                                        image_size is not None, first_path),
                                   chunk)
                for offset, array in enumerate(decoded):
                    images[start + offset] = array
                done += len(chunk)
                report(done, total)
            images.flush()
            del images
            np.save(folder / f"{split}_y.npy", np.array([label for _, label in items], np.int64))
    mean, std = _channel_stats(np.load(folder / "train_x.npy", mmap_mode="r"))
    log.info("decoded %d images of %s in %.1f s", total, directory,
             time.perf_counter() - started)
    return {"classes": list(found.classes), "mean": mean, "std": std, "split": found.split,
            "mode": mode}


def _decode(path: str, mode: str, size: tuple[int, int], resize: bool, first: str
            ) -> np.ndarray:
    """Image ``path`` as uint8 ``(C, H, W)`` in ``mode`` and ``size`` (width, height)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if not resize and image.size != size:
                raise DatasetError(
                    f"{path} is {image.size[0]}x{image.size[1]} but {first} is "
                    f"{size[0]}x{size[1]}: the images differ in size; set image_size to "
                    f"resize them to one side")
            if resize:
                image.draft(None, size)  # JPEG: decode at a reduced scale when much larger
            image = image.convert(mode) if image.mode != mode else image
            if image.size != size:
                image = image.resize(size, Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except DatasetError:
        raise
    except Exception as error:  # truncated data, bad chunks, decompression bombs, ...
        raise DatasetError(f"{path}: not a readable image: {error}") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and population std, accumulated in float64 over chunks of images."""
    channels = images.shape[1]
    total, squares = np.zeros(channels), np.zeros(channels)
    for start in range(0, len(images), 1024):
        chunk = images[start:start + 1024].astype(np.float64)
        total += chunk.sum(axis=(0, 2, 3))
        squares += np.square(chunk).sum(axis=(0, 2, 3))
    count = len(images) * images.shape[2] * images.shape[3]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return mean.tolist(), std.tolist()
