"""The loss plane: orthonormal axes, the three networks at their coordinates, and the grid's
value at a network's coordinates equal to that network's own loss."""

from __future__ import annotations

import pytest
import torch

from pruning.data import load_dataset
from pruning.models import build_model
from pruning.valley import (
    evaluate_state,
    flatten,
    loss_plane,
    plane_axes,
    trainable_names,
    with_parameters,
)


def test_axes_are_orthonormal_and_place_the_three_points():
    generator = torch.Generator().manual_seed(0)
    origin, first, second = (torch.randn(500, dtype=torch.float64, generator=generator)
                             for _ in range(3))
    axes = plane_axes(origin, first, second)
    assert torch.linalg.vector_norm(axes.u).item() == pytest.approx(1.0, abs=1e-12)
    assert torch.linalg.vector_norm(axes.v).item() == pytest.approx(1.0, abs=1e-12)
    assert torch.dot(axes.u, axes.v).item() == pytest.approx(0.0, abs=1e-12)
    for name, vector in (("origin", origin), ("first", first), ("second", second)):
        torch.testing.assert_close(axes.point(*axes.coordinates[name]), vector,
                                   rtol=0, atol=1e-12)
    x, y = axes.coordinates["first"]
    assert y == 0 and x == pytest.approx(torch.linalg.vector_norm(first - origin).item())
    assert axes.coordinates["second"][1] > 0


def test_collinear_points_have_no_plane():
    origin = torch.zeros(10, dtype=torch.float64)
    first = torch.ones(10, dtype=torch.float64)
    with pytest.raises(ValueError, match="collinear"):
        plane_axes(origin, first, 3 * first)


def test_grid_at_a_networks_coordinates_reproduces_its_loss():
    data = load_dataset("digits")
    train_x, train_y = data.train_x[:400], data.train_y[:400]
    torch.manual_seed(0)
    model = build_model("cnn-small", input_shape=data.input_shape, num_classes=10)
    reference = {key: value.clone() for key, value in model.state_dict().items()}
    names = trainable_names(model)
    generator = torch.Generator().manual_seed(1)

    def moved(scale: float) -> dict:
        state = dict(reference)
        for name in names:
            noise = torch.randn(reference[name].shape, generator=generator)
            state[name] = reference[name] + scale * noise
        return state

    # The pruned point far out along x, the initial point nearer: with no margin the grid's
    # corners (0, 0) and (x_max, 0) are the reference and the pruned network.
    pruned, initial = moved(0.05), moved(0.01)
    plane = loss_plane(model, initial=initial, reference=reference, pruned=pruned, data=data,
                       train_x=train_x, train_y=train_y, grid=3, margin=0.0, batch_size=256)
    x_pruned, y_pruned = plane["points"]["pruned"]
    assert plane["x"][-1] == x_pruned and plane["y"][0] == y_pruned == 0.0
    assert plane["points"]["reference"] == [0.0, 0.0] and plane["points"]["init"][1] > 0
    own = {name: evaluate_state(model, state, data, train_x, train_y, batch_size=256)
           for name, state in (("reference", reference), ("pruned", pruned))}
    assert plane["train_loss"][0][0] == own["reference"]["train_loss"]
    assert plane["train_loss"][0][-1] == pytest.approx(own["pruned"]["train_loss"], rel=1e-5)
    assert plane["test_error"][0][-1] == pytest.approx(1 - own["pruned"]["test_accuracy"],
                                                       abs=1e-9)
    # The reconstructed pruned weights are the pruned weights, to float32 rounding.
    axes = plane_axes(*(flatten(s, names) for s in (reference, pruned, initial)))
    rebuilt = with_parameters(reference, axes.point(x_pruned, y_pruned), names)
    for name in names:
        torch.testing.assert_close(rebuilt[name], pruned[name], rtol=1e-6, atol=1e-7)
    assert all(0 <= e <= 1 for row in plane["test_error"] for e in row)
    assert len(plane["train_loss"]) == len(plane["y"]) == 3
