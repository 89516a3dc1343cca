"""The spec's torch-free names are the engine's: its registries are keyed by the same names (the
sizes are compared in test_spec_sizes.py)."""

from __future__ import annotations

from pruneboard.spec import catalog
from pruning.methods import BASELINE_CLASSES
from pruning.models import MODEL_NAMES


def test_the_engine_registries_have_the_spec_names():
    assert tuple(BASELINE_CLASSES) == catalog.BASELINES
    assert MODEL_NAMES == catalog.MODELS
