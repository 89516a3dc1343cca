"""Hessian top eigenpairs and projection fractions: closed forms on quadratics, and the
minibatched Hessian-vector product against autograd's dense Hessian on small networks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from pruning.data import load_dataset
from pruning.models import build_model
from pruning.valley import (
    HessianVectorProduct,
    ValleyOptions,
    analyze_pair,
    projection_fractions,
    top_eigenpairs,
)


def rotation(dim: int, seed: int) -> torch.Tensor:
    matrix = torch.randn(dim, dim, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(seed))
    q, _ = torch.linalg.qr(matrix)
    return q


def quadratic_hvp(hessian: torch.Tensor):
    """The HVP of L(w) = ½ wᵀHw + bᵀw by double backprop, as the model HVP computes it."""
    b = torch.linspace(-1, 1, hessian.shape[0], dtype=torch.float64)

    def hvp(vector: torch.Tensor) -> torch.Tensor:
        w = torch.zeros(hessian.shape[0], dtype=torch.float64, requires_grad=True)
        loss = 0.5 * w @ hessian @ w + b @ w
        (grad,) = torch.autograd.grad(loss, w, create_graph=True)
        (product,) = torch.autograd.grad(grad @ vector, w)
        return product
    return hvp


def test_top_eigenpairs_match_the_closed_form_of_a_rotated_diagonal_hessian():
    dim, k = 60, 5
    spectrum = torch.cat([torch.tensor([50.0, 20.0, 9.0, 4.0, 3.5]),
                          torch.linspace(-2.0, 3.0, dim - 5)]).double()
    q = rotation(dim, 0)
    hessian = q @ torch.diag(spectrum) @ q.T
    values, vectors = top_eigenpairs(quadratic_hvp(hessian), dim, k)
    np.testing.assert_allclose(values, [50.0, 20.0, 9.0, 4.0, 3.5], rtol=1e-6)
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(k), atol=1e-8)
    # Each eigenvector is ± the rotated axis of its eigenvalue.
    overlaps = np.abs(np.sum(vectors * q[:, :k].numpy(), axis=0))
    np.testing.assert_allclose(overlaps, np.ones(k), rtol=1e-6)


def test_projection_fraction_matches_the_closed_form():
    dim, k = 40, 3
    spectrum = torch.tensor([9.0, 7.0, 5.0] + [1.0 - 0.01 * i for i in range(dim - 3)]).double()
    q = rotation(dim, 1)
    hessian = q @ torch.diag(spectrum) @ q.T
    _, vectors = top_eigenpairs(quadratic_hvp(hessian), dim, k)
    coefficients = torch.arange(1, dim + 1, dtype=torch.float64) % 7 - 3
    delta = q @ coefficients
    expected = math.sqrt((coefficients[:k] ** 2).sum() / (coefficients ** 2).sum())
    fractions = projection_fractions(vectors, delta, random_directions=3,
                                     generator=torch.Generator().manual_seed(0))
    assert fractions.delta == pytest.approx(expected, rel=1e-6)
    assert len(fractions.random) == 3 and all(0 <= f <= 1 for f in fractions.random)
    # A direction inside the top eigenspace is all in it, one orthogonal to it not at all.
    inside = projection_fractions(vectors, q[:, :k] @ torch.tensor([1.0, -2.0, 0.5]).double(), 1)
    outside = projection_fractions(vectors, q[:, k:] @ torch.ones(dim - k).double(), 1)
    assert inside.delta == pytest.approx(1.0, rel=1e-8)
    assert outside.delta == pytest.approx(0.0, abs=1e-6)


def test_random_direction_fraction_is_sqrt_k_over_d_on_average():
    dim, k, draws = 2000, 10, 400
    basis = rotation(dim, 2)[:, :k]
    delta = torch.ones(dim, dtype=torch.float64)
    fractions = projection_fractions(basis, delta, draws, torch.Generator().manual_seed(3))
    random = np.array(fractions.random)
    # E[fraction²] = k/d exactly; the mean fraction is √(k/d) up to O(1/k) Jensen slack.
    assert np.mean(random ** 2) == pytest.approx(k / dim, rel=0.1)
    assert np.mean(random) == pytest.approx(math.sqrt(k / dim), rel=0.08)
    again = projection_fractions(basis, delta, draws, torch.Generator().manual_seed(3))
    assert again.random == fractions.random


def small_network() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    inputs = torch.randn(23, 4, dtype=torch.float64)
    targets = torch.randint(0, 3, (23,))
    return model, inputs, targets


def dense_hessian(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(vector: torch.Tensor) -> torch.Tensor:
        pieces = vector.split([math.prod(s) for s in shapes])
        params = {n: piece.view(s) for n, piece, s in zip(names, pieces, shapes, strict=True)}
        return F.cross_entropy(functional_call(model, params, (inputs,)), targets)

    return torch.autograd.functional.hessian(loss, flat)


def test_hvp_equals_the_autograd_hessian_times_v_on_a_small_network():
    model, inputs, targets = small_network()
    hessian = dense_hessian(model, inputs, targets)
    hvp = HessianVectorProduct(model, inputs, targets, batch_size=len(targets))
    vector = torch.randn(hvp.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(hvp(vector), hessian @ vector, rtol=1e-10, atol=1e-12)
    assert hvp.dim == hessian.shape[0] == 43 and hvp.calls == 1
    # Minibatches of 5 (the last one of 3) accumulate to the same product.
    batched = HessianVectorProduct(model, inputs, targets, batch_size=5)
    torch.testing.assert_close(batched(vector), hessian @ vector, rtol=1e-10, atol=1e-12)
    # And Lanczos on the HVP finds the dense Hessian's top eigenvalues.
    values, _ = top_eigenpairs(batched, hvp.dim, 4)
    np.testing.assert_allclose(values, np.linalg.eigvalsh(hessian.numpy())[::-1][:4], rtol=1e-6)


def test_minibatch_hvp_equals_full_batch_hvp_for_a_batchnorm_cnn_in_eval_mode():
    data = load_dataset("digits")
    torch.manual_seed(0)
    model = build_model("cnn-small", input_shape=data.input_shape, num_classes=10).double()
    model.train()
    with torch.no_grad():  # non-trivial running statistics
        model(data.train_x[:200].double())
    model.eval()
    inputs, targets = data.train_x[:60].double(), data.train_y[:60]
    full = HessianVectorProduct(model, inputs, targets, batch_size=60)
    batched = HessianVectorProduct(model, inputs, targets, batch_size=16)
    vector = torch.randn(full.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected = full(vector)
    assert batched.batches == 4
    torch.testing.assert_close(batched(vector), expected, rtol=1e-9, atol=1e-12)
    assert torch.linalg.vector_norm(expected) > 0
    before = {key: value.clone() for key, value in model.state_dict().items()}
    for key, value in model.state_dict().items():  # eval mode: no buffer moved
        assert torch.equal(value, before[key]), key


def test_top_eigenpairs_rejects_k_not_below_dim():
    with pytest.raises(ValueError, match="k: must be in"):
        top_eigenpairs(lambda v: v, 5, 5)


def test_analyze_pair_hessian_report_is_consistent_and_json_ready():
    data = load_dataset("digits")
    states = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build_model("mlp", input_shape=data.input_shape, num_classes=10,
                            mlp_widths=(16,))
        states.append(model.state_dict())
    options = ValleyOptions(kinds=("hessian",), hessian_k=3, random_directions=4,
                            eval_samples=300, hessian_tol=1e-3)
    report = analyze_pair(model, reference=states[0], pruned=states[1], initial=None,
                          data=data, options=options, device="cpu")
    json.dumps(report, allow_nan=False)
    hessian = report["hessian"]
    assert hessian["dim"] == sum(p.numel() for p in model.parameters()) == 64 * 16 + 16 + 170
    assert hessian["k"] == 3 and len(hessian["eigenvalues"]) == 3
    assert hessian["eigenvalues"] == sorted(hessian["eigenvalues"], reverse=True)
    assert 0 <= hessian["fraction"] <= 1 and len(hessian["random_fractions"]) == 4
    assert hessian["random_expected"] == pytest.approx(math.sqrt(3 / hessian["dim"]))
    assert hessian["hvps"] > 3 and report["train_samples"] == 300
    assert set(report) == {"hessian", "elapsed_s", "skipped", "train_samples"}
