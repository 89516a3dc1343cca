"""One call that runs the chosen analyses on an (SGD, sDprun) pair and returns plain JSON data."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import nn

from pruning.data import Dataset

from .batchnorm import reestimate_batchnorm
from .evaluation import finite, training_subset
from .hessian import HessianVectorProduct, projection_fractions, top_eigenpairs
from .options import ValleyOptions
from .path import bezier_path, linear_path
from .plane import loss_plane
from .weights import State, check_states, flatten, to_device, trainable_names

Progress = Callable[[float, str], None]


def analyze_pair(model: nn.Module, *, reference: State, pruned: State, initial: State | None,
                 data: Dataset, options: ValleyOptions, device: torch.device | str,
                 on_progress: Progress | None = None) -> dict:
    """Loss-valley analysis between the SGD twin (``reference``) and the sDprun network
    (``pruned``), both state dicts of ``model``'s architecture; ``initial`` (the shared initial
    weights) is needed only by the plane, which is skipped without it.

    ``model`` is a template whose weights are overwritten. Training losses use at most
    ``options.eval_samples`` training samples (:func:`training_subset`); every point is measured
    in eval mode after re-estimating BatchNorm statistics on them. Returns a dict with one entry per
    kind run (see the functions in :mod:`pruning.valley`), ``elapsed_s`` per kind, ``skipped``
    ({kind: reason}) and ``train_samples``; no tensors and no NaN (a diverged value is None).
    ``on_progress(fraction, message)`` is called as the work goes, fraction rising to 1.

    The Hessian is that of the mean training cross entropy over all trainable parameters at
    w_SGD, model in eval mode with w_SGD's BatchNorm statistics re-estimated on the same samples;
    Δ = w_sDprun − w_SGD over the same parameters.
    """
    device = torch.device(device)
    model.to(device)
    check_states(model, reference=reference, pruned=pruned, initial=initial)
    reference, pruned = to_device(reference, device), to_device(pruned, device)
    initial = None if initial is None else to_device(initial, device)
    data = data.to(device)
    train_x, train_y = training_subset(data, options.eval_samples, options.seed)
    skipped = {}
    kinds = list(options.kinds)
    if "plane" in kinds and initial is None:
        kinds.remove("plane")
        skipped["plane"] = "no initial weights given"
    costs = {"linear": options.points, "bezier": options.bezier_steps / 10 + options.bezier_points,
             "hessian": 8 * options.hessian_k + 80, "plane": options.plane_grid ** 2}
    total = sum(costs[kind] for kind in kinds)
    result: dict = {"elapsed_s": {}, "skipped": skipped, "train_samples": len(train_y)}
    done = 0.0
    for kind in kinds:
        share = costs[kind] / total
        progress = _part(on_progress, done, share, kind)
        started = time.perf_counter()
        if kind == "linear":
            result[kind] = _named_ends(linear_path(
                model, reference, pruned, data, train_x=train_x, train_y=train_y,
                points=options.points, batch_size=options.batch_size, on_progress=progress))
        elif kind == "bezier":
            result[kind] = _named_ends(bezier_path(
                model, reference, pruned, data, train_x=train_x, train_y=train_y,
                points=options.bezier_points, steps=options.bezier_steps, lr=options.bezier_lr,
                train_batch_size=options.bezier_batch_size, batch_size=options.batch_size,
                seed=options.seed, on_progress=progress))
        elif kind == "hessian":
            result[kind] = hessian_analysis(model, reference, pruned, train_x, train_y,
                                            options=options, on_progress=progress)
        else:
            result[kind] = loss_plane(
                model, initial=initial, reference=reference, pruned=pruned, data=data,
                train_x=train_x, train_y=train_y, grid=options.plane_grid,
                margin=options.plane_margin, batch_size=options.batch_size,
                on_progress=progress)
        result["elapsed_s"][kind] = time.perf_counter() - started
        done += share
        if on_progress is not None:
            on_progress(min(done, 1.0), f"{kind} done")
    return result


def hessian_analysis(model: nn.Module, reference: State, pruned: State, train_x: torch.Tensor,
                     train_y: torch.Tensor, *, options: ValleyOptions,
                     on_progress: Progress | None = None) -> dict:
    """Top eigenpairs of the training-loss Hessian at ``reference`` (see :func:`analyze_pair`)
    and the projection fractions of Δ and of random directions (seeded by ``options.seed``)."""
    model.load_state_dict(reference)
    reestimate_batchnorm(model, train_x, batch_size=options.batch_size)
    model.eval()
    hvp = HessianVectorProduct(model, train_x, train_y, batch_size=options.batch_size)
    k = min(options.hessian_k, hvp.dim - 1)
    expected = 8 * k + 80  # a typical ARPACK run; progress only

    def counted(vector: torch.Tensor) -> torch.Tensor:
        product = hvp(vector)
        if on_progress is not None and hvp.calls % 5 == 0:
            on_progress(min(hvp.calls / expected, 0.95), f"{hvp.calls} Hessian-vector products")
        return product

    values, vectors = top_eigenpairs(counted, hvp.dim, k, tol=options.hessian_tol,
                                     seed=options.seed)
    names = trainable_names(model)
    delta = flatten(pruned, names).cpu() - flatten(reference, names).cpu()
    fractions = projection_fractions(vectors, delta, options.random_directions,
                                     torch.Generator().manual_seed(options.seed))
    random = [finite(f) for f in fractions.random]
    return {"eigenvalues": [finite(v) for v in values], "fraction": finite(fractions.delta),
            "random_fractions": random,
            "random_mean": finite(sum(random) / len(random)) if None not in random else None,
            "random_expected": math.sqrt(k / hvp.dim), "dim": hvp.dim, "k": k,
            "hvps": hvp.calls, "delta_norm": finite(torch.linalg.vector_norm(delta).item())}


def _named_ends(path: dict) -> dict:
    ends = path.pop("endpoints")
    path["endpoints"] = {"reference": ends["start"], "pruned": ends["end"]}
    return path


def _part(on_progress: Progress | None, start: float, share: float, kind: str) -> Progress | None:
    if on_progress is None:
        return None
    return lambda fraction, message: on_progress(start + share * min(max(fraction, 0.0), 1.0),
                                                 f"{kind}: {message}")
