"""The spec's torch-free names and counts are the engine's: registries keyed by the same names,
and ``pruneboard.spec.sizes`` counting what ``pruning.metrics.CostModel`` counts."""

from __future__ import annotations

import pytest
import torch

from pruneboard.spec import catalog
from pruneboard.spec.sizes import model_size
from pruning.groups import build_groups
from pruning.methods import BASELINE_CLASSES
from pruning.metrics import CostModel
from pruning.models import MODEL_NAMES, build_model

SHAPES = [((1, 8, 8), 10), ((3, 32, 32), 100), ((3, 33, 31), 7)]


def test_the_engine_registries_have_the_spec_names():
    assert tuple(BASELINE_CLASSES) == catalog.BASELINES
    assert MODEL_NAMES == catalog.MODELS


@pytest.mark.parametrize("name", catalog.MODELS)
@pytest.mark.parametrize(("shape", "classes"), SHAPES)
def test_sizes_count_what_the_cost_model_counts(name, shape, classes):
    if min(shape[1:]) < catalog.MIN_INPUT_SIDE[name]:
        pytest.skip(f"{name} needs a side of at least {catalog.MIN_INPUT_SIDE[name]}")
    widths = (17, 5) if name == "mlp" else (300, 100)
    with torch.device("meta"):  # counts need no weights: wrn-28-10 builds in no time
        model = build_model(name, input_shape=shape, num_classes=classes, mlp_widths=widths)
        cost = CostModel(model, build_groups(model), shape)
    assert model_size(name, shape, classes, widths) == (cost.dense_params, cost.dense_flops)
