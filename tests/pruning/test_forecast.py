"""The engine's pruning forecast against real training: the threshold it accumulates is the
optimizer's, step for step, and the step it forecasts for a layer whose weights a BatchNorm
follows is the step at which that layer's groups die."""

from __future__ import annotations

import pytest

from pruning.config import TrainConfig
from pruning.forecast import forecast, threshold_path
from pruning.job import prepare
from pruning.train import train

LAYER = "features.7"  # cnn-small's last conv, read by its BatchNorm, then the classifier


def run(**fields) -> tuple[TrainConfig, dict, dict[int, dict]]:
    config = TrainConfig(model="cnn-small", dataset="synthetic", synthetic_shape=(3, 8, 8),
                         synthetic_size=512, batch_size=32, epochs=10, mu=0.6,
                         schedule="cosine", schedule_unit="epoch", log_interval=1,
                         bn_samples=0, device="cpu", **fields)
    predicted = forecast(prepare(config))
    events: dict[int, dict] = {}
    train(config, lambda e: events.__setitem__(e["step"], e) if e["type"] == "train" else None)
    return config, predicted, events


# The conv's own gradient is orthogonal to its weights (the BatchNorm makes the loss blind to
# their scale), so only the BatchNorm's γ, β move its groups' norms, and at these step sizes
# the threshold outruns them. (At lr 0.1, with c set for the same forecast step, the γ grow
# enough to keep most of the layer past it: the forecast is the threshold's part alone.)
@pytest.mark.parametrize("lr, c", [(0.02, 0.45), (0.05, 0.17)])
def test_the_forecast_step_is_when_the_layers_groups_die(lr, c):
    config, predicted, events = run(lr=lr, c=c)
    total = predicted["total_steps"]
    assert total == max(events) == 10 * 16
    # λ_n is accumulated as the optimizer does, with the lr set before each step.
    path = threshold_path(config, total, 16)
    assert [events[n]["threshold"] for n in sorted(events)] == pytest.approx(
        path.tolist(), rel=1e-12)
    layer = next(e for e in predicted["layers"] if e["name"] == LAYER)
    assert layer["step"] is not None and layer["step"] < 0.9 * total
    died = min(step for step, e in events.items() if e["layer_group_sparsity"][LAYER] >= 0.5)
    assert abs(died - layer["step"]) <= 0.1 * died, (died, layer["step"])


def test_a_method_without_threshold_has_no_forecast():
    assert forecast(prepare(TrainConfig(method="sgd", epochs=1, device="cpu"))) is None
