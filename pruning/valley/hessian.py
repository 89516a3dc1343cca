"""The top of the training-loss Hessian's spectrum, and how much of a direction lies in it.

sDprun's claim is *directional* pruning: the step from the SGD minimum w_SGD to the sparse
w_sDprun avoids the Hessian's large-curvature directions. With Q_k the top-k eigenvectors of
H = ∇²L(w_SGD) and Δ = w_sDprun − w_SGD, the measured quantity is

    fraction(Δ) = ‖P_k Δ‖ / ‖Δ‖ = ‖Q_kᵀ Δ‖ / ‖Δ‖    (Q_k has orthonormal columns),

reported beside the same fraction for random directions, whose mean square is exactly k/d in
dimension d (so their fraction is ≈ √(k/d)). A fraction well below the random one means Δ keeps
out of the sharp directions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import Tensor, nn


class HessianVectorProduct:
    """``v ↦ H·v`` for ``L(w) = (1/N)·Σ_i CE(f(x_i; w), y_i)``, the mean cross entropy over
    ``inputs``, at the model's current weights, in the model's current mode (eval mode: the
    BatchNorm layers use their running statistics, so they are fixed affine maps), with respect to
    ``params`` (default: every trainable parameter, in ``named_parameters`` order).

    Each product is Pearlmutter's double backprop, accumulated over minibatches of
    ``batch_size``: each minibatch's graph (loss, gradient with ``create_graph``, gradient of
    ⟨g, v⟩) is built, used and freed before the next, so memory is that of one minibatch, not of
    the whole dataset. The vector is cast to the parameters' dtype and device; the result is a
    1-D tensor there. ``calls`` counts products.
    """

    def __init__(self, model: nn.Module, inputs: Tensor, targets: Tensor, *, batch_size: int,
                 params: Sequence[Tensor] | None = None) -> None:
        self.model, self.inputs, self.targets = model, inputs, targets
        self.params = list(params) if params is not None else [
            p for p in model.parameters() if p.requires_grad]
        self.dim = sum(p.numel() for p in self.params)
        self.batches = math.ceil(len(targets) / batch_size)
        self.calls = 0

    def __call__(self, vector: Tensor) -> Tensor:
        first = self.params[0]
        vector = torch.as_tensor(vector).to(first.device, first.dtype)
        if vector.shape != (self.dim,):
            raise ValueError(f"vector must have shape ({self.dim},); got {tuple(vector.shape)}")
        pieces = [piece.view_as(p) for piece, p in
                  zip(vector.split([p.numel() for p in self.params]), self.params, strict=True)]
        total = [torch.zeros_like(p) for p in self.params]
        count = len(self.targets)
        for inputs, targets in zip(torch.tensor_split(self.inputs, self.batches),
                                   torch.tensor_split(self.targets, self.batches), strict=True):
            with torch.enable_grad():
                loss = F.cross_entropy(self.model(inputs), targets, reduction="sum") / count
                grads = torch.autograd.grad(loss, self.params, create_graph=True,
                                            allow_unused=True)
                dot = sum((g * v).sum() for g, v in zip(grads, pieces, strict=True)
                          if g is not None and g.requires_grad)
                if not isinstance(dot, Tensor):  # the loss is linear in every parameter
                    continue
                products = torch.autograd.grad(dot, self.params, allow_unused=True)
            for acc, product in zip(total, products, strict=True):
                if product is not None:
                    acc.add_(product)
        self.calls += 1
        return torch.cat([t.reshape(-1) for t in total])


def top_eigenpairs(hvp: Callable[[Tensor], Tensor], dim: int, k: int, *, tol: float = 0.0,
                   seed: int = 0, maxiter: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` algebraically largest eigenpairs of the symmetric operator ``hvp``, by implicitly
    restarted Lanczos (ARPACK through ``scipy.sparse.linalg.eigsh``, ``which="LA"``).

    ``hvp`` takes a float64 CPU tensor of shape (dim,) and returns the product (any dtype or
    device). The Lanczos start vector is Gaussian with ``seed``; ``tol`` is ARPACK's relative
    accuracy (0: machine precision; use about 1e-4 for float32 products). Returns
    (eigenvalues (k,), eigenvectors (dim, k) with orthonormal columns), float64 numpy, largest
    first. Needs k < dim.
    """
    if not 1 <= k < dim:
        raise ValueError(f"k: must be in [1, {dim - 1}] for a {dim}-dimensional operator; got {k}")

    def matvec(x: np.ndarray) -> np.ndarray:
        product = hvp(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1)))
        return product.detach().to("cpu", torch.float64).numpy()

    operator = LinearOperator((dim, dim), matvec=matvec, dtype=np.float64)
    start = np.random.default_rng(seed).standard_normal(dim)
    values, vectors = eigsh(operator, k=k, which="LA", tol=tol, v0=start, maxiter=maxiter)
    order = np.argsort(values)[::-1]
    return values[order], vectors[:, order]


class ProjectionFractions(NamedTuple):
    delta: float  # ‖P_k Δ‖ / ‖Δ‖
    random: list[float]  # the same for each random direction


def projection_fractions(eigenvectors: np.ndarray | Tensor, delta: np.ndarray | Tensor,
                         random_directions: int = 10,
                         generator: torch.Generator | None = None) -> ProjectionFractions:
    """``‖Q_kᵀ Δ‖ / ‖Δ‖`` for Δ and for ``random_directions`` random directions.

    ``eigenvectors`` (d, k) must have orthonormal columns. A random direction is a standard
    Gaussian vector in R^d (drawn on the CPU from ``generator``) scaled to ‖Δ‖, i.e. uniform on
    the sphere of Δ's radius; the fraction does not depend on the scale, and its square has mean
    k/d exactly. Everything is float64.
    """
    basis = torch.as_tensor(eigenvectors).to("cpu", torch.float64)
    delta = torch.as_tensor(delta).to("cpu", torch.float64).reshape(-1)
    if basis.ndim != 2 or basis.shape[0] != delta.numel():
        raise ValueError(f"eigenvectors must be (d, k) with d = {delta.numel()}; "
                         f"got {tuple(basis.shape)}")
    norm = torch.linalg.vector_norm(delta)
    if norm == 0:
        raise ValueError("delta is zero: the two networks are the same point")

    def fraction(direction: Tensor) -> float:
        return (torch.linalg.vector_norm(basis.T @ direction)
                / torch.linalg.vector_norm(direction)).item()

    random = []
    for _ in range(random_directions):
        direction = torch.randn(delta.numel(), dtype=torch.float64, generator=generator)
        random.append(fraction(direction * (norm / torch.linalg.vector_norm(direction))))
    return ProjectionFractions(fraction(delta), random)
