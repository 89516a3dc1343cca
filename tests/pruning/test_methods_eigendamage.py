import copy

import pytest
import torch
from method_runs import (
    SMALL_CNN,
    SMALL_MLP,
    assert_pruned_groups_exactly_zero,
    assert_reaches_target,
    run,
)

from pruning import TrainConfig
from pruning.job import prepare
from pruning.methods.eigendamage import EigenDamage, eigen_scores, kfac_factors, kfe_reparameterise


@pytest.mark.parametrize("values", [SMALL_MLP, SMALL_CNN], ids=["mlp", "cnn-small"])
def test_the_network_reparameterised_in_the_eigenbasis_computes_the_same_function(values):
    job = prepare(TrainConfig(**values, method="eigendamage", prune_samples=64))
    groups = job.structure.groups
    factors = kfac_factors(job, groups, step=0)
    model = copy.deepcopy(job.model).double()
    for group, (a, s) in zip(groups, factors, strict=True):
        q_a, q_s = torch.linalg.eigh(a)[1], torch.linalg.eigh(s)[1]
        assert not torch.allclose(q_a, torch.eye(len(q_a), dtype=q_a.dtype))  # a real rotation
        model.set_submodule(group.name, kfe_reparameterise(
            model.get_submodule(group.name), q_a, q_s))
    inputs = job.data.test_x[:50].double()
    job.model.double().eval(), model.eval()
    assert (model(inputs) - job.model(inputs)).abs().max() < 1e-9


def test_the_eigenbasis_score_is_the_kronecker_factored_loss_change():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    a = torch.randn(7, 7, generator=generator, dtype=torch.float64)
    s = torch.randn(5, 5, generator=generator, dtype=torch.float64)
    a, s = a @ a.T, s @ s.T
    fisher = torch.kron(a, s)  # vec(W) stacks columns: F = A ⊗ S for W's column-major vec
    for unit in range(5):
        delta = torch.zeros_like(weight)
        delta[unit] = weight[unit]
        vec = delta.T.reshape(-1)
        expected = 0.5 * vec @ fisher @ vec
        assert eigen_scores(weight, a, s)[unit] == pytest.approx(float(expected))


def test_the_target_is_reached_on_digits_and_pruned_groups_are_exactly_zero(monkeypatch):
    events, summary, job = run(monkeypatch, **SMALL_CNN, method="eigendamage", prune_samples=64)
    assert isinstance(job.method, EigenDamage)
    assert_reaches_target(events)
    assert_pruned_groups_exactly_zero(job)
    assert summary["test_accuracy"] > 0.5
