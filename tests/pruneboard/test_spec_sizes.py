"""The torch-free parameter and FLOP counts the service limits use equal the engine's own."""

import pytest

from pruneboard.spec.catalog import MIN_INPUT_SIDE, MODELS
from pruneboard.spec.sizes import count_model
from pruning.groups import build_groups
from pruning.metrics import CostModel
from pruning.models import build_model

# Each model on every shape it accepts (vgg16-bn's five max-pools need 32px).
SHAPES = [(3, 32, 32), (1, 33, 35), (2, 8, 9)]


@pytest.mark.parametrize("model, shape", [(model, shape) for model in MODELS for shape in SHAPES
                                          if min(shape[1:]) >= MIN_INPUT_SIDE[model]])
def test_counts_match_the_torch_models(model, shape):
    network = build_model(model, input_shape=shape, num_classes=7, mlp_widths=(30, 20))
    cost = CostModel(network, build_groups(network), shape)
    count = count_model(model, shape, 7, (30, 20))
    assert (count.params, count.flops) == (cost.dense_params, cost.dense_flops)


@pytest.mark.parametrize("model", ["mlp", "cnn-small", "resnet20", "wrn-28-10"])
def test_the_activation_estimate_counts_every_conv_and_linear_output(model):
    import torch
    from torch import nn

    shape = (3, 16, 16)
    network = build_model(model, input_shape=shape, num_classes=7, mlp_widths=(30, 20))
    outputs = []
    hooks = [m.register_forward_hook(lambda m, i, o: outputs.append(o.numel()))
             for m in network.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    network.eval()
    with torch.no_grad():
        network(torch.zeros(1, *shape))
    for hook in hooks:
        hook.remove()
    count = count_model(model, shape, 7, (30, 20))
    assert count.activation_bytes(batch_size=5) == 3 * 4 * 5 * sum(outputs)
