"""A decoded dataset kept beside its files, so an image folder is decoded once, not per job.

A cache is one folder of ``.npy`` arrays (the images uint8 ``(N, C, H, W)``, opened
memory-mapped) and a ``meta.json`` (per-channel mean and std, classes), named by a key that
hashes the source files' names, sizes and mtimes and the decoding options: a changed file gives
a new key, and the stale caches of the same folder are removed. It lives in
``DIR/.pruneboard-cache/KEY`` or, where the data folder is read-only, in the temporary folder
(``pruneboard-cache/<hash of DIR>/KEY``). A cache is built in a temporary sibling and renamed
into place: two workers building at once each finish their own and the first rename wins, so
no reader ever sees half a cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .dataset import DatasetError, RawSplits

log = logging.getLogger(__name__)

CACHE_DIR = ".pruneboard-cache"
FORMAT_VERSION = 1  # bump when what a cache holds changes: old caches then miss and are rebuilt
ARRAYS = ("train_x", "train_y", "test_x", "test_y")
_TMP = "tmp-"
_ABANDONED_S = 3600.0  # a temporary folder this old belongs to a builder that died


def cache_roots(directory: Path) -> list[Path]:
    """Where caches of ``directory`` may live, in the order they are looked for."""
    directory = Path(directory).absolute()
    fallback = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    return [directory / CACHE_DIR,
            Path(tempfile.gettempdir()) / "pruneboard-cache" / fallback]


def cache_key(source: object, options: str) -> str:
    """The folder name of a cache: ``DIGEST-OPTIONS``, DIGEST a hash of ``source`` (JSON-able:
    the files, their sizes and mtimes) and OPTIONS how they were decoded (``[a-z0-9]+``). A new
    cache removes those of the same folder with another DIGEST (older files)."""
    digest = hashlib.sha256(json.dumps([FORMAT_VERSION, source]).encode()).hexdigest()[:20]
    return f"{digest}-{options}"


def load(directory: Path, key: str) -> tuple[RawSplits, dict] | None:
    """The cached splits (images memory-mapped) and meta of ``key``, or None when no root holds
    a complete cache of that key."""
    for root in cache_roots(directory):
        found = _open(root / key)
        if found is not None:
            return found
    return None


def build(directory: Path, key: str, write: Callable[[Path], dict]) -> tuple[RawSplits, dict]:
    """Run ``write(folder)`` (it fills a fresh folder with ``ARRAYS`` as .npy and returns the
    meta), then publish that folder atomically as the cache ``key``, and open it."""
    errors = []
    for root in cache_roots(directory):
        try:
            root.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=f"{_TMP}{key}-", dir=root))
        except OSError as error:  # read-only data folder (or a file in the way): next root
            errors.append(f"{root}: {error.strerror or error}")
            continue
        return _publish(root, key, scratch, write)
    raise DatasetError(f"cannot write a decoded cache of {directory}: {'; '.join(errors)}")


def _publish(root: Path, key: str, scratch: Path, write: Callable[[Path], dict]
             ) -> tuple[RawSplits, dict]:
    final = root / key
    try:
        meta = write(scratch)
        (scratch / "meta.json").write_text(json.dumps({"version": FORMAT_VERSION, **meta}))
        try:
            os.rename(scratch, final)
        except OSError:
            if _open(final) is None:  # not another builder's finished cache: a broken one
                shutil.rmtree(final, ignore_errors=True)
                os.rename(scratch, final)
    except OSError as error:
        raise DatasetError(f"cannot write the decoded cache {scratch}: "
                           f"{error.strerror or error}") from error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # gone after a rename; kept after a failure
    _prune(root, key)
    opened = _open(final)
    if opened is None:
        raise DatasetError(f"the decoded cache {final} was written but cannot be read back")
    return opened


def _open(folder: Path) -> tuple[RawSplits, dict] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("version") != FORMAT_VERSION:
        return None
    try:
        arrays = [np.load(folder / f"{name}.npy", allow_pickle=False,
                          mmap_mode="r" if name.endswith("_x") else None) for name in ARRAYS]
    except (OSError, ValueError) as error:
        log.warning("decoded cache %s is unreadable (%s); it is rebuilt", folder, error)
        return None
    splits = RawSplits(*arrays)
    if len(splits.train_x) != len(splits.train_y) or len(splits.test_x) != len(splits.test_y):
        log.warning("decoded cache %s is inconsistent; it is rebuilt", folder)
        return None
    return splits, meta


def _prune(root: Path, key: str) -> None:
    """Remove the caches of older versions of the files (a different SOURCE part of the key),
    and scratch folders of builders that died. Readers that still map an old cache keep their
    view: a removed file stays readable until it is closed."""
    source = key.split("-", 1)[0]
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    now = time.time()
    for entry in entries:
        try:
            if entry.name.startswith(_TMP):
                stale = now - entry.stat().st_mtime > _ABANDONED_S
            else:
                stale = entry.name.split("-", 1)[0] != source
        except OSError:
            continue
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
