"""Loss along paths between two trained networks: the straight line and a quadratic Bézier curve.

Every point is measured by :func:`pruning.valley.evaluation.evaluate_state`: BatchNorm statistics
re-estimated on the training inputs, then train and test loss and accuracy in eval mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from pruning.data import Dataset, augment_batch

from .batchnorm import reestimate_batchnorm
from .evaluation import barriers, evaluate_state, finite, mean_loss
from .weights import State, mix, trainable_names

Progress = Callable[[float, str], None]
METRICS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


def evenly_spaced(points: int) -> list[float]:
    """``points`` values from 0 to 1, both ends exact."""
    if points < 2:
        raise ValueError(f"points: must be at least 2; got {points}")
    return [i / (points - 1) for i in range(points)]


def linear_path(model: nn.Module, state_a: State, state_b: State, data: Dataset, *,
                train_x: Tensor, train_y: Tensor, points: int, batch_size: int,
                on_progress: Progress | None = None) -> dict:
    """``w(t) = (1−t)·w_a + t·w_b`` at ``points`` evenly spaced t.

    Returns {t, train_loss, train_accuracy, test_loss, test_accuracy (lists over t), barrier
    (of the train loss, above the chord between the ends), barrier_t (where it is reached),
    barrier_above_ends (above the higher end), barrier_above_ends_t (where the train loss peaks),
    endpoints: {start, end} (the metrics at t=0 and 1)}; the barriers are defined in
    :func:`pruning.valley.evaluation.barriers`.
    ``model`` is only a template: its weights are overwritten.
    """
    return _measure_curve(model, lambda t: mix([state_a, state_b], [1 - t, t]),
                          evenly_spaced(points), data, train_x, train_y, batch_size, on_progress)


def bezier_path(model: nn.Module, state_a: State, state_b: State, data: Dataset, *,
                train_x: Tensor, train_y: Tensor, points: int, steps: int, lr: float,
                train_batch_size: int, batch_size: int, seed: int,
                on_progress: Progress | None = None) -> dict:
    """The quadratic Bézier curve ``w(t) = (1−t)²·w_a + 2t(1−t)·θ + t²·w_b`` of mode
    connectivity (Garipov et al., 2018), with fixed ends and a trained middle point θ.

    θ starts at the midpoint of the trainable parameters and takes ``steps`` SGD steps (momentum
    0.9) on ``E_t L(w(t))``: each step draws t ~ U(0, 1) and a minibatch of ``train_batch_size``
    from the whole training set (augmented if the dataset is), with the model in train mode, so
    BatchNorm uses batch statistics. Then the curve is measured like :func:`linear_path`, with
    curve_train_loss (the mean minibatch loss over the last tenth of the steps) added.
    """
    names = trainable_names(model)
    middle = _train_middle(model, state_a, state_b, names, data, steps=steps, lr=lr,
                           batch_size=train_batch_size, seed=seed,
                           on_progress=_scaled(on_progress, 0.0, 0.5))
    theta, curve_loss = middle
    result = _measure_curve(
        model, lambda t: mix([state_a, theta, state_b], [(1 - t) ** 2, 2 * t * (1 - t), t ** 2]),
        evenly_spaced(points), data, train_x, train_y, batch_size,
        _scaled(on_progress, 0.5, 1.0))
    result["curve_train_loss"] = curve_loss
    result["train_steps"] = steps
    return result


def linear_path_losses(model: nn.Module, state_a: State, state_b: State, inputs: Tensor,
                       targets: Tensor, *, points: int, batch_size: int,
                       reestimate_bn: bool = True) -> list[float]:
    """Mean cross entropy on (inputs, targets) at ``points`` evenly spaced t of the straight line
    from ``state_a`` to ``state_b``, each after BatchNorm re-estimation on ``inputs`` (when
    ``reestimate_bn`` and the model has BatchNorm), in eval mode. The live valley monitor's
    cheap helper: ``model`` is a scratch template (weights overwritten, left in eval mode)."""
    losses = []
    for t in evenly_spaced(points):
        model.load_state_dict(mix([state_a, state_b], [1 - t, t]))
        if reestimate_bn:
            reestimate_batchnorm(model, inputs, batch_size=batch_size)
        model.eval()
        losses.append(mean_loss(model, inputs, targets, batch_size=batch_size))
    return losses


def _measure_curve(model: nn.Module, point: Callable[[float], State], ts: list[float],
                   data: Dataset, train_x: Tensor, train_y: Tensor, batch_size: int,
                   on_progress: Progress | None) -> dict:
    series: dict[str, list] = {name: [] for name in METRICS}
    for index, t in enumerate(ts):
        measured = evaluate_state(model, point(t), data, train_x, train_y, batch_size=batch_size)
        for name in METRICS:
            series[name].append(measured[name])
        if on_progress is not None:
            on_progress((index + 1) / len(ts), f"t = {t:.3f}: train loss {measured['train_loss']}")
    return {"t": ts, **series, **barriers(series["train_loss"], ts),
            "endpoints": {"start": {name: series[name][0] for name in METRICS},
                          "end": {name: series[name][-1] for name in METRICS}}}


def _train_middle(model: nn.Module, state_a: State, state_b: State, names: list[str],
                  data: Dataset, *, steps: int, lr: float, batch_size: int, seed: int,
                  on_progress: Progress | None) -> tuple[State, float | None]:
    model.load_state_dict(state_a)
    ends_a = {name: state_a[name] for name in names}
    ends_b = {name: state_b[name] for name in names}
    middle = {name: ((ends_a[name] + ends_b[name]) / 2).clone().requires_grad_(True)
              for name in names}
    optimizer = torch.optim.SGD(list(middle.values()), lr=lr, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    size = len(data.train_y)
    batch_size = min(batch_size, size)
    tail, tail_start = [], steps - max(1, steps // 10)
    model.train()
    started = time.perf_counter()
    for step in range(steps):
        t = torch.rand((), generator=generator).item()
        chosen = torch.randint(size, (batch_size,), generator=generator).to(data.train_x.device)
        inputs = data.train_x[chosen]
        if data.augment:
            inputs = augment_batch(inputs, generator, fill=data.black)
        params = {name: (1 - t) ** 2 * ends_a[name] + 2 * t * (1 - t) * middle[name]
                  + t ** 2 * ends_b[name] for name in names}
        loss = F.cross_entropy(functional_call(model, params, (inputs,)), data.train_y[chosen])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= tail_start:
            tail.append(loss.item())
        if on_progress is not None and (step + 1) % max(1, steps // 20) == 0:
            on_progress((step + 1) / steps, f"curve step {step + 1}/{steps} "
                        f"({time.perf_counter() - started:.0f} s)")
    model.eval()
    theta = dict(state_a)
    theta.update({name: value.detach() for name, value in middle.items()})
    return theta, finite(sum(tail) / len(tail)) if tail else None


def _scaled(on_progress: Progress | None, low: float, high: float) -> Progress | None:
    if on_progress is None:
        return None
    return lambda fraction, message: on_progress(low + (high - low) * fraction, message)
