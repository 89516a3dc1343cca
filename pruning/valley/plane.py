"""The loss over the plane through three networks (Garipov et al., 2018, Figure 1).

The plane goes through w_SGD (the origin), w_sDprun and w_init. Its axes come from Gram–Schmidt
on the trainable parameters, in float64:

    u = (w_sDprun − w_SGD) / ‖w_sDprun − w_SGD‖
    v = r / ‖r‖,  r = (w_init − w_SGD) − ⟨w_init − w_SGD, u⟩·u

so a point (x, y) is w_SGD + x·u + y·v, with x and y in units of parameter norm: w_SGD sits at
(0, 0), w_sDprun at (‖Δ‖, 0) and w_init at (⟨w_init − w_SGD, u⟩, ‖r‖). Buffers come from w_SGD
and BatchNorm statistics are re-estimated at every point.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pruning.data import Dataset

from .evaluation import evaluate_state
from .weights import State, flatten, trainable_names, with_parameters

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class PlaneAxes:
    origin: Tensor  # float64 vectors of the trainable parameters
    u: Tensor
    v: Tensor
    coordinates: dict[str, tuple[float, float]]  # origin, first and second as (x, y)

    def point(self, x: float, y: float) -> Tensor:
        return self.origin + x * self.u + y * self.v


def plane_axes(origin: Tensor, first: Tensor, second: Tensor) -> PlaneAxes:
    """Orthonormal axes of the plane through three vectors: u towards ``first``, v towards
    ``second`` orthogonalised (twice, for accuracy in float64). ValueError if they are collinear."""
    origin, first, second = (t.to(torch.float64) for t in (origin, first, second))
    along = first - origin
    length = torch.linalg.vector_norm(along)
    if length == 0:
        raise ValueError("the first point equals the origin: no plane")
    u = along / length
    across = second - origin
    along_u = torch.dot(across, u)
    residual = across - along_u * u
    residual -= torch.dot(residual, u) * u
    height = torch.linalg.vector_norm(residual)
    if height <= 1e-12 * torch.linalg.vector_norm(across):
        raise ValueError("the three points are collinear: no plane")
    v = residual / height
    coordinates = {"origin": (0.0, 0.0), "first": (length.item(), 0.0),
                   "second": (along_u.item(), height.item())}
    return PlaneAxes(origin, u, v, coordinates)


def grid_values(low: float, high: float, margin: float, count: int) -> list[float]:
    """``count`` evenly spaced values from low − margin·(high − low) to high + margin·(…)."""
    span = high - low
    start, stop = low - margin * span, high + margin * span
    return [start + (stop - start) * i / (count - 1) for i in range(count)]


def loss_plane(model: nn.Module, *, initial: State, reference: State, pruned: State,
               data: Dataset, train_x: Tensor, train_y: Tensor, grid: int, margin: float,
               batch_size: int, on_progress: Progress | None = None) -> dict:
    """Train loss and test error on a ``grid`` × ``grid`` lattice of the plane (see the module
    docstring), reaching ``margin`` of the points' extent beyond them along each axis.

    Returns {x: [grid], y: [grid], train_loss: [[…]], test_error: [[…]] (row j is y[j], column i
    is x[i], as a heat map's z), points: {init, reference, pruned: [x, y]}, axes: {origin, x, y}
    (what each axis is)}. ``model`` is a template: its weights are overwritten.
    """
    names = trainable_names(model)
    axes = plane_axes(*(flatten(s, names) for s in (reference, pruned, initial)))
    points = {"reference": axes.coordinates["origin"], "pruned": axes.coordinates["first"],
              "init": axes.coordinates["second"]}
    xs = [p[0] for p in points.values()]
    ys = [p[1] for p in points.values()]
    x_values = grid_values(min(xs), max(xs), margin, grid)
    y_values = grid_values(min(ys), max(ys), margin, grid)
    train_loss = [[None] * grid for _ in range(grid)]
    test_error = [[None] * grid for _ in range(grid)]
    started, done = time.perf_counter(), 0
    for j, y in enumerate(y_values):
        for i, x in enumerate(x_values):
            state = with_parameters(reference, axes.point(x, y), names)
            measured = evaluate_state(model, state, data, train_x, train_y, batch_size=batch_size)
            train_loss[j][i] = measured["train_loss"]
            accuracy = measured["test_accuracy"]
            test_error[j][i] = None if accuracy is None else 1.0 - accuracy
        done += grid
        if on_progress is not None:
            on_progress(done / grid ** 2, f"plane row {j + 1}/{grid} "
                        f"({time.perf_counter() - started:.0f} s)")
    return {"x": x_values, "y": y_values, "train_loss": train_loss, "test_error": test_error,
            "points": {name: list(xy) for name, xy in points.items()},
            "axes": {"origin": "reference", "x": "towards pruned",
                     "y": "towards init, orthogonalised"}}
