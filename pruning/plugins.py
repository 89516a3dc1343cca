"""Worker plugins: models and datasets that installed packages register by entry point.

A team with code it trusts on its own workers installs a package that declares, e.g.::

    [project.entry-points."pruneboard.models"]
    my-net = "my_package.models:build"      # (input_shape, num_classes) -> nn.Module

    [project.entry-points."pruneboard.datasets"]
    my-data = "my_package.data:load"        # (data_dir: Path | None, seed: int) -> RawSplits

Workers report the names in their heartbeat, and the API accepts a job naming one only while
some live worker has it. A plugin that fails to import, is not callable, has a name the job spec
would refuse or shadows a built-in is logged once and skipped: a broken package never stops a
worker from running the jobs it can.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from pruneboard.spec.catalog import (
    DATASETS,
    MODELS,
    NAME_PATTERN,
    PLUGIN_DATASET_GROUP,
    PLUGIN_MODEL_GROUP,
)

log = logging.getLogger(__name__)

_BUILT_IN = {PLUGIN_MODEL_GROUP: MODELS, PLUGIN_DATASET_GROUP: DATASETS}
# Problems already logged: discovery runs at every heartbeat rescan and every job start, and a
# broken plugin should be one warning in the log, not one every 30 seconds.
_WARNED: set[tuple[str, str, str]] = set()


def model_plugins() -> dict[str, Callable]:
    """Name -> builder ``(input_shape, num_classes) -> nn.Module`` of every working model plugin."""
    return _discover(PLUGIN_MODEL_GROUP)


def dataset_plugins() -> dict[str, Callable]:
    """Name -> reader ``(data_dir, seed) -> RawSplits`` of every working dataset plugin."""
    return _discover(PLUGIN_DATASET_GROUP)


def plugin_names() -> dict[str, list[str]]:
    """What a worker reports in its heartbeat: ``{"models": [...], "datasets": [...]}``."""
    return {"models": sorted(model_plugins()), "datasets": sorted(dataset_plugins())}


def _discover(group: str) -> dict[str, Callable]:
    # Entry points are re-read at each call (it only reads the installed metadata): a package
    # installed into a running worker's environment is found at the next rescan.
    found: dict[str, Callable] = {}
    for point in entry_points(group=group):
        target = _load(group, point, found)
        if target is not None:
            found[point.name] = target
    return found


def _load(group: str, point: EntryPoint, found: dict[str, Callable]) -> Callable | None:
    where = f"{point.name} = {point.value}"
    if not re.fullmatch(NAME_PATTERN, point.name):
        return _skip(group, where, f"the name must match {NAME_PATTERN} (lower-case, as jobs "
                                   f"name it)")
    if point.name in _BUILT_IN[group]:
        return _skip(group, where, "the name is built in; the built-in wins")
    if point.name in found:
        return _skip(group, where, "another installed plugin registers the same name first")
    try:
        target = point.load()
    except Exception as error:  # a plugin's import can fail in any way; it must not stop us
        return _skip(group, where, f"cannot be loaded: {type(error).__name__}: {error}")
    if not callable(target):
        return _skip(group, where, f"is a {type(target).__name__}, not a callable")
    return target


def _skip(group: str, where: str, why: str) -> None:
    key = (group, where, why)
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning("skipping %s plugin %s: %s", group, where, why)
    return None
