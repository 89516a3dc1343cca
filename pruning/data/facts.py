"""What a worker can really read: the dataset folders under its data roots, and their facts.

A job names its data folder by a name (``data_dir``), never by a server path: the folder of that
name in the first data root that has it. Workers report the folders they find with the facts
validation needs (input shape, classes, training samples), read from the files themselves, so a
job is only accepted for a folder some worker can load.

Rescans are cheap: facts are cached per folder and kept while the sizes and mtimes of its files
(and, for an image folder, of its class folders) stay the same, so a rescan of unchanged folders
only lists and stats files. An image folder's facts come from the image headers (no pixel is
decoded), an npz folder's from the array headers inside the archive and its labels.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from pruneboard.spec.catalog import FOLDER_DATASETS, DatasetFacts

from . import cifar, imagefolder, mnist
from .cifar import load_batch
from .dataset import DatasetError
from .npz import find_npz, npz_facts

log = logging.getLogger(__name__)


class FolderFacts(NamedTuple):
    facts: DatasetFacts  # an image folder's input shape is its first image's
    mixed_sizes: bool = False  # an image folder whose images differ in size


# (dataset, folder) -> (signature of its files, facts or the error message). Failures are kept
# too: a malformed folder is then read and warned about once, not at every rescan.
_CACHE: dict[tuple[str, str], tuple[tuple, FolderFacts | str]] = {}
_MISSING_ROOTS: set[str] = set()  # roots already warned about, so the log is not flooded

_CIFAR = {  # dataset -> (sub-folder, train files, test files, labels key, classes)
    "cifar10": (cifar.CIFAR10_DIR, cifar.CIFAR10_TRAIN, cifar.CIFAR10_TEST, "labels", 10),
    "cifar100": (cifar.CIFAR100_DIR, cifar.CIFAR100_TRAIN, cifar.CIFAR100_TEST, "fine_labels",
                 100),
}


def dataset_files(dataset: str, directory: Path) -> dict[str, Path] | None:
    """The files ``dataset`` is read from in ``directory``, found where its reader looks first,
    or None when they are not all there. Only lists and stats files; an image folder's class
    folders are among them, so that adding or removing a file changes their mtime."""
    if dataset == "imagefolder":
        watched = _image_folder_watched(directory)
        return None if watched is None else {path: Path(path) for path in watched}
    if dataset == "npz":
        return {path.name: path for path in sorted(Path(directory).glob("*.npz"))
                if not path.name.startswith(".") and path.is_file()} or None
    if dataset == "mnist":
        for candidate in mnist.candidate_dirs(directory):
            paths = {key: mnist.find_file(candidate, name) for key, name in mnist.FILES.items()}
            if all(path is not None for path in paths.values()):
                return paths
        return None
    if dataset not in _CIFAR:
        raise DatasetError(f"{dataset!r} is not read from a folder; folder datasets are: "
                           f"{', '.join(FOLDER_DATASETS)}")
    folder, train, test, _, _ = _CIFAR[dataset]
    for candidate in (directory / folder, directory):
        if all((candidate / name).is_file() for name in train + test):
            return {name: candidate / name for name in train + test}
    return None


def folder_facts(dataset: str, directory: Path, image_size: int | None = None) -> DatasetFacts:
    """Input shape, classes and training samples of ``dataset`` in ``directory`` as a load with
    ``image_size`` (imagefolder only) gives them, read from its files: the IDX headers for mnist,
    the image headers for imagefolder, the array headers and labels for npz (no pixel is read),
    the training batches for cifar."""
    found = read_folder(dataset, directory)
    if image_size is not None:
        channels = found.facts.input_shape[0]
        return DatasetFacts((channels, image_size, image_size), found.facts.num_classes,
                            found.facts.train_size)
    if found.mixed_sizes:
        raise DatasetError(f"the images in {directory} differ in size; set image_size to resize "
                           f"them to one side")
    return found.facts


def read_folder(dataset: str, directory: Path) -> FolderFacts:
    """The facts of ``dataset`` in ``directory`` as stored (an image folder's shape is its first
    image's, before any resize), with whether its images differ in size."""
    directory = Path(directory)
    if dataset == "imagefolder":
        return _imagefolder_facts(directory)
    if dataset == "npz":
        path = find_npz(directory)
        if path is None:
            raise DatasetError(f"{directory} does not hold npz: expected one .npz file")
        return FolderFacts(npz_facts(path))
    files = dataset_files(dataset, directory)
    if files is None:
        wanted = (mnist.expected_files() if dataset == "mnist"
                  else [*_CIFAR[dataset][1], *_CIFAR[dataset][2]])
        raise DatasetError(f"{directory} does not hold {dataset}: expected {', '.join(wanted)}")
    if dataset == "mnist":
        return FolderFacts(_mnist_facts(files))
    _, train, test, labels_key, classes = _CIFAR[dataset]
    # Every batch is loaded, the test batches too: the count is only known from the unpickled
    # arrays, and a folder that would fail the job's own load is better not reported at all.
    sizes = [len(load_batch(files[name], labels_key, classes)[1]) for name in train]
    for name in test:
        load_batch(files[name], labels_key, classes)
    return FolderFacts(DatasetFacts((3, 32, 32), classes, sum(sizes)))


def _imagefolder_facts(directory: Path) -> FolderFacts:
    found = imagefolder.layout(directory)
    mode, (width, height) = imagefolder.read_header(found.train[0][0])
    # Every header is read (not decoded): a corrupt file is caught here, and so are sizes that
    # differ, which the job then has to resize.
    mixed = False
    for path, _ in found.train + found.test:
        mixed |= imagefolder.read_header(path)[1] != (width, height)
    channels = len(imagefolder.target_mode(mode))
    return FolderFacts(DatasetFacts((channels, height, width), len(found.classes),
                                    len(found.train)), mixed)


def _mnist_facts(files: dict[str, Path]) -> DatasetFacts:
    dims = {key: _idx_header(path, mnist.IMAGES_MAGIC if key.endswith("images")
                             else mnist.LABELS_MAGIC) for key, path in files.items()}
    for split in ("train", "test"):
        images, labels = dims[f"{split}_images"], dims[f"{split}_labels"]
        if images[0] != labels[0]:
            raise DatasetError(f"{files[f'{split}_images']} holds {images[0]} images but "
                               f"{files[f'{split}_labels']} holds {labels[0]} labels")
    if dims["train_images"][0] == 0:
        raise DatasetError(f"{files['train_images']}: holds no images")
    if dims["train_images"][1:] != dims["test_images"][1:]:
        raise DatasetError(f"train images are {dims['train_images'][1:]} but test images "
                           f"{dims['test_images'][1:]}")
    _, rows, cols = dims["train_images"]
    return DatasetFacts((1, rows, cols), mnist.NUM_CLASSES, dims["train_images"][0])


def _idx_header(path: Path, magic: int) -> tuple[int, ...]:
    """The sizes in an IDX header, checked against the file's length where that is known
    without decompressing (plain files)."""
    ndim = magic & 0xFF
    header_len = 4 + 4 * ndim
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as file:
            raw = file.read(header_len)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    if len(raw) < header_len or int.from_bytes(raw[:4], "big") != magic:
        raise DatasetError(f"{path}: not an IDX file with magic number {magic}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    if any(d < 0 for d in dims):
        raise DatasetError(f"{path}: negative size in IDX header {dims}")
    if path.suffix != ".gz" and path.stat().st_size != header_len + int(np.prod(dims)):
        raise DatasetError(f"{path}: header sizes {dims} do not match the file's length")
    return dims


def data_dir_problem(name: str) -> str | None:
    """Why ``name`` cannot name a folder in a data root (it must be a plain folder name), or
    None. The message shows only the name, never a server path."""
    if not name or "\0" in name or "\\" in name or "/" in name or ".." in name \
            or name.startswith(".") or Path(name).is_absolute():
        return (f"{name!r} is not the name of a data folder (a folder directly under a data "
                f"root: no path, no '..', not hidden)")
    return None


def resolve_data_dir(name: str, roots: list[Path]) -> Path:
    """The absolute path of folder ``name`` in the first of ``roots`` that has it."""
    problem = data_dir_problem(name)
    if problem:
        raise DatasetError(problem)
    for root in roots:
        candidate = Path(root).expanduser().absolute() / name
        if candidate.is_dir():
            return candidate
    raise DatasetError(f"no data root of this worker has a folder named {name!r}")


def scan_data_roots(roots: list[Path]) -> list[dict]:
    """Every dataset folder under ``roots``: one entry per (immediate sub-folder, dataset it
    holds), roots in order and sub-folders by name. A name in an earlier root shadows the same
    name in later ones, as in :func:`resolve_data_dir`. Never raises for a bad folder: it is
    skipped, with a warning."""
    found: list[dict] = []
    seen: set[str] = set()
    for root in roots:
        for folder in _sub_folders(Path(root).expanduser().absolute()):
            if folder.name in seen:
                continue
            seen.add(folder.name)
            for dataset in FOLDER_DATASETS:
                known = _cached_facts(dataset, folder)
                if known is not None:
                    facts = known.facts
                    found.append({"dataset": dataset, "data_dir": folder.name,
                                  "input_shape": list(facts.input_shape),
                                  "num_classes": facts.num_classes,
                                  "train_size": facts.train_size,
                                  **({"mixed_sizes": known.mixed_sizes}
                                     if dataset == "imagefolder" else {})})
    return found


def _sub_folders(root: Path) -> list[Path]:
    try:
        entries = sorted(root.iterdir(), key=lambda path: path.name)
    except OSError as error:
        if str(root) not in _MISSING_ROOTS:
            _MISSING_ROOTS.add(str(root))
            log.warning("data root %s cannot be listed: %s", root, error.strerror or error)
        return []
    _MISSING_ROOTS.discard(str(root))
    folders = []
    for entry in entries:
        try:
            if data_dir_problem(entry.name) is None and entry.is_dir():
                folders.append(entry)
        except OSError:  # a broken link or a folder we may not stat: not a data folder
            continue
    return folders


def _image_folder_watched(directory: Path) -> list[str] | None:
    listing = imagefolder.list_files(directory)
    if listing is None:
        return None
    watched = []
    for split, classes in listing.items():
        watched.append(os.path.join(directory, split))
        for name, paths in classes.items():
            watched.append(os.path.join(directory, split, name))
            watched += paths
    return watched


def _cached_facts(dataset: str, folder: Path) -> FolderFacts | None:
    try:
        if dataset == "imagefolder":  # plain strings: an image folder may hold many files
            watched = _image_folder_watched(folder)
        else:
            files = dataset_files(dataset, folder)
            watched = None if files is None else [str(path) for path in files.values()]
        if watched is None:
            return None
        stats = [(path, os.stat(path)) for path in watched]
    except OSError as error:
        log.warning("skipping %s folder %s: %s", dataset, folder, error)
        return None
    signature = tuple((path, st.st_size, st.st_mtime_ns) for path, st in stats)
    key = (dataset, str(folder))
    cached = _CACHE.get(key)
    if cached is not None and cached[0] == signature:
        outcome = cached[1]
    else:
        try:
            outcome = read_folder(dataset, folder)
        except (DatasetError, OSError) as error:
            outcome = str(error)
            log.warning("skipping %s folder %s: %s", dataset, folder, outcome)
        _CACHE[key] = (signature, outcome)
    return outcome if isinstance(outcome, FolderFacts) else None
