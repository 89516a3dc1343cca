import copy
import math

import pytest
import torch
from torch import nn

from pruning.groups import build_groups
from pruning.optim import GRDA, SDprun, threshold_increment
from pruning.schedules import learning_rate


def small_net(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 3),
    ).to(dtype)


def make_optimizer(kind, model, **kw):
    groups = build_groups(model).param_groups()
    return {"sdprun": SDprun, "grda": GRDA}[kind](groups, **kw)


def run_steps(model, optimizer, steps, seed=1, lr_schedule=None):
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        x = torch.randn(16, 1, 6, 6, generator=generator, dtype=torch.float64)
        y = torch.randint(0, 3, (16,), generator=generator)
        if lr_schedule:
            for group in optimizer.param_groups:
                group["lr"] = lr_schedule(step)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize("kind", ["sdprun", "grda"])
def test_foreach_and_single_tensor_paths_agree_in_float64(kind):
    results = []
    for foreach in (False, True):
        model = small_net()
        optimizer = make_optimizer(kind, model, lr=0.2, c=0.15, mu=0.6, foreach=foreach)
        run_steps(model, optimizer, 30)
        results.append(model)
    single, multi = results
    for p_single, p_multi in zip(single.parameters(), multi.parameters(), strict=True):
        torch.testing.assert_close(p_single, p_multi, rtol=1e-12, atol=1e-14)
    prunable = build_groups(single).prunable_parameters()
    zeros = sum(int((p == 0).sum()) for p in prunable)
    # Part pruned, part shrunk: both the zero and the nonzero branches were compared.
    assert 0 < zeros < sum(p.numel() for p in prunable)


@pytest.mark.parametrize("kind", ["sdprun", "grda"])
def test_state_dict_resume_matches_an_uninterrupted_run(kind):
    model = small_net()
    optimizer = make_optimizer(kind, model, lr=0.2, c=0.05, mu=0.6)
    run_steps(model, optimizer, 10, seed=1)
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    run_steps(model, optimizer, 10, seed=2)

    resumed = small_net(seed=99)  # different initial weights: everything must come from the save
    resumed.load_state_dict(saved_model)
    resumed_optimizer = make_optimizer(kind, resumed, lr=0.2, c=0.05, mu=0.6)
    resumed_optimizer.load_state_dict(saved_optimizer)
    run_steps(resumed, resumed_optimizer, 10, seed=2)

    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    assert resumed_optimizer.param_groups[0]["step"] == 20
    assert resumed_optimizer.param_groups[0]["threshold"] == optimizer.param_groups[0]["threshold"]


def test_threshold_under_a_step_schedule_equals_the_closed_form_sum():
    c, mu, base = 0.003, 0.55, 0.4
    schedule = lambda step: learning_rate("step", base, step, 60, (0.5, 0.75), 0.1)  # noqa: E731
    model = small_net()
    optimizer = make_optimizer("sdprun", model, lr=base, c=c, mu=mu)
    run_steps(model, optimizer, 60, lr_schedule=schedule)
    expected = sum(c * schedule(k - 1) ** (mu + 0.5) * (k**mu - (k - 1) ** mu)
                   for k in range(1, 61))
    assert optimizer.param_groups[0]["threshold"] == pytest.approx(expected, rel=1e-12)
    # With a constant rate the sum telescopes to c·√γ·(nγ)^μ.
    constant = sum(threshold_increment(base, c, mu, k) for k in range(1, 61))
    assert constant == pytest.approx(c * math.sqrt(base) * (60 * base) ** mu, rel=1e-12)


def test_group_at_the_threshold_goes_to_zero_and_one_above_shrinks_by_the_right_factor():
    # lr=1, μ=1/2 and c=1 make λ_1 = 1 exactly; |G| = 4 makes the group threshold λ·√4 = 2.
    weight = nn.Parameter(torch.tensor([[1.0, 1.0, 1.0, 1.0],      # ‖v‖ = 2: at the threshold
                                        [2.0, 2.0, 2.0, 2.0],      # ‖v‖ = 4: factor 1 − 2/4
                                        [0.5, -0.5, 0.5, -0.5]],   # ‖v‖ = 1: under it
                                       dtype=torch.float64))
    for foreach in (False, True):
        p = nn.Parameter(weight.detach().clone())
        optimizer = SDprun([p], lr=1.0, c=1.0, mu=0.5, foreach=foreach)
        p.grad = torch.zeros_like(p)
        optimizer.step()
        assert optimizer.param_groups[0]["threshold"] == 1.0
        assert torch.equal(p[0], torch.zeros(4, dtype=torch.float64))
        assert torch.equal(p[1], torch.ones(4, dtype=torch.float64))
        assert torch.equal(p[2], torch.zeros(4, dtype=torch.float64))


def test_tied_tensors_shrink_as_one_group():
    weight = nn.Parameter(torch.tensor([[3.0, 0.0], [0.0, 0.0]], dtype=torch.float64))
    bias = nn.Parameter(torch.tensor([4.0, 0.0], dtype=torch.float64))
    optimizer = SDprun([{"params": [weight, bias], "units": [[0, 1]]}], lr=1.0, c=1.0, mu=0.5)
    weight.grad, bias.grad = torch.zeros_like(weight), torch.zeros_like(bias)
    optimizer.step()
    # Group 0 = (3, 0, 4): ‖v‖ = 5, |G| = 3, factor = 1 − √3/5.
    factor = 1 - math.sqrt(3) / 5
    torch.testing.assert_close(weight[0], torch.tensor([3 * factor, 0.0], dtype=torch.float64))
    torch.testing.assert_close(bias[0], torch.tensor(4 * factor, dtype=torch.float64))
    assert weight[1].abs().sum() == 0 and bias[1] == 0


def test_grda_soft_thresholds_each_weight():
    p = nn.Parameter(torch.tensor([3.0, -0.5, 1.0, -2.0], dtype=torch.float64))
    optimizer = GRDA([p], lr=1.0, c=1.0, mu=0.5)
    p.grad = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    optimizer.step()  # v = (2, −0.5, 1, −2), λ = 1
    assert p.tolist() == [1.0, 0.0, 0.0, -1.0]


def test_unpruned_groups_get_plain_dual_averaging():
    model = small_net()
    structure = build_groups(model)
    classifier = dict(model.named_parameters())["10.weight"]
    start = classifier.detach().clone()
    optimizer = SDprun(structure.param_groups(), lr=0.5, c=1.0, mu=0.9)  # huge threshold
    run_steps(model, optimizer, 3)
    assert all(p.abs().sum() == 0 for p in structure.prunable_parameters())
    accumulator = optimizer.state[classifier]["accumulator"]
    assert torch.equal(classifier, accumulator)
    assert not torch.equal(classifier, start)


def test_a_parameter_without_gradient_keeps_its_accumulator():
    p = nn.Parameter(torch.tensor([[1.0, 1.0]], dtype=torch.float64))
    optimizer = SDprun([p], lr=0.01, c=0.1, mu=0.5)
    optimizer.step()  # no grad at all
    assert torch.equal(optimizer.state[p]["accumulator"], torch.tensor([[1.0, 1.0]],
                                                                        dtype=torch.float64))
    assert p[0, 0] < 1.0  # still thresholded


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": 0.0}, "lr=0.0"),
    ({"lr": -1.0}, "lr=-1.0"),
    ({"c": -0.1}, "c=-0.1"),
    ({"mu": 1.0}, "mu=1.0"),
    ({"mu": 0.0}, "mu=0.0"),
])
@pytest.mark.parametrize("optimizer", [SDprun, GRDA])
def test_bad_hyper_parameters_are_refused_naming_the_value(optimizer, kwargs, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        optimizer([nn.Parameter(torch.ones(2, 2))], **kwargs)


def test_units_must_share_their_first_dimension():
    a, b = nn.Parameter(torch.ones(3, 2)), nn.Parameter(torch.ones(4))
    with pytest.raises(ValueError, match="share dim 0"):
        SDprun([{"params": [a, b], "units": [[0, 1]]}])


def test_closure_is_evaluated_with_gradients():
    p = nn.Parameter(torch.tensor([1.0, 2.0]))
    optimizer = SDprun([p], lr=0.1, c=0.0, mu=0.5)

    def closure():
        optimizer.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    assert optimizer.step(closure).item() == 5.0
    torch.testing.assert_close(p.detach(), torch.tensor([0.8, 1.6]))


def test_batchnorm_weighting_sizes_the_shrinkage_by_gamma_and_beta_alone():
    conv_weight = nn.Parameter(torch.tensor([[5.0, 0.0], [5.0, 0.0]], dtype=torch.float64))
    gamma = nn.Parameter(torch.tensor([0.3, 3.0], dtype=torch.float64))
    beta = nn.Parameter(torch.tensor([0.4, 4.0], dtype=torch.float64))
    params = [conv_weight, gamma, beta]
    group = {"params": params, "units": [[0, 1, 2]], "norm_units": [[1, 2]]}
    optimizer = SDprun([group], lr=1.0, c=1.0 / math.sqrt(2), mu=0.5)  # λ_1 = 1/√2, λ·√2 = 1
    for p in params:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    # Unit 0: ‖(γ, β)‖ = 0.5 ≤ 1, so the whole filter dies though its weights have norm 5.
    assert conv_weight[0].abs().sum() == 0 and gamma[0] == 0 and beta[0] == 0
    # Unit 1: ‖(γ, β)‖ = 5, factor 1 − 1/5 on every tensor of the unit.
    torch.testing.assert_close(conv_weight[1], torch.tensor([4.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(gamma[1], torch.tensor(2.4, dtype=torch.float64))


def test_batchnorm_weighting_from_the_group_structure():
    model = small_net()
    structure = build_groups(model, (1, 6, 6))
    group = structure.param_groups("batchnorm")[0]
    for tied, part in zip(group["units"], group["norm_units"], strict=True):
        assert set(part) <= set(tied)
    # The two convs end in a BatchNorm (γ, β); the hidden Linear has none.
    assert [len(part) for part in group["norm_units"]] == [2, 2, 0]
    with pytest.raises(ValueError, match="norm_units"):
        SDprun([{**group, "norm_units": group["norm_units"][:1]}], lr=0.1)
