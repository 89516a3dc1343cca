"""A real installed distribution of worker plugins for tests: a ``*.dist-info`` folder with
entry points and its module, in a folder put on sys.path, so importlib.metadata discovers it as
it would any installed package. Working plugins (tiny-net, blobs) beside broken ones."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MODULE = '''
import numpy as np
import torch
from torch import nn

from pruning.data import RawSplits

SEEN = []


def tiny(input_shape, num_classes):
    channels, height, width = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * height * width, 16), nn.ReLU(),
                         nn.Linear(16, num_classes))


def blobs(data_dir, seed):
    SEEN.append((data_dir, seed))
    rng = np.random.default_rng(seed)
    y = np.arange(40) % 3
    x = (rng.normal(size=(40, 2, 4, 4)) + y[:, None, None, None]).astype(np.float32)
    return RawSplits(x[:30], y[:30], x[30:], y[30:])


def lopsided(data_dir, seed):
    return RawSplits(np.zeros((4, 1, 2, 2)), np.zeros(3, dtype=int), np.zeros((2, 1, 2, 2)),
                     np.zeros(2, dtype=int))


def exploding(input_shape, num_classes):
    raise RuntimeError("no GPU library here")


def not_a_module(input_shape, num_classes):
    return "a string"


NOT_CALLABLE = 42
'''


@contextmanager
def installed_plugins(folder: Path, monkeypatch) -> Iterator[str]:
    """Install ``pruneboard-test-plugins`` into ``folder`` (on sys.path while the block runs);
    yields its module's name, unique so tests never share an imported copy."""
    module = f"pb_plugin_{uuid.uuid4().hex[:8]}"
    (folder / f"{module}.py").write_text(MODULE)
    info = folder / "pruneboard_test_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pruneboard-test-plugins\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(f"""\
        [pruneboard.models]
        tiny-net = {module}:tiny
        exploding-net = {module}:exploding
        stringy-net = {module}:not_a_module
        broken-import = {module}_missing:tiny
        not-callable = {module}:NOT_CALLABLE
        Upper-Case = {module}:tiny
        mlp = {module}:tiny

        [pruneboard.datasets]
        blobs = {module}:blobs
        lopsided = {module}:lopsided
        """))
    monkeypatch.syspath_prepend(str(folder))
    try:
        yield module
    finally:
        sys.modules.pop(module, None)
