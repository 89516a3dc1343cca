"""The torch-free parameter and FLOP counts the service limits use equal the engine's own."""

import pytest

from pruneboard.spec.catalog import MIN_INPUT_SIDE, MODELS
from pruneboard.spec.sizes import model_size
from pruning.groups import build_groups
from pruning.metrics import CostModel
from pruning.models import build_model


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 33, 35), (2, 8, 9)])
def test_counts_match_the_torch_models(model, shape):
    if min(shape[1:]) < MIN_INPUT_SIDE[model]:
        pytest.skip(f"{model} needs {MIN_INPUT_SIDE[model]}px")
    network = build_model(model, input_shape=shape, num_classes=7, mlp_widths=(30, 20))
    cost = CostModel(network, build_groups(network), shape)
    assert model_size(model, shape, 7, (30, 20)) == (cost.dense_params, cost.dense_flops)
