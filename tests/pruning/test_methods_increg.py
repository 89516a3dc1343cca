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
from pruning.methods.common import rank_of
from pruning.methods.increg import IncReg


def test_penalties_grow_by_rank_and_act_on_the_gradient():
    job = prepare(TrainConfig(**SMALL_MLP, method="increg", prune_interval=3))
    method = job.method
    assert isinstance(method, IncReg)
    start = method.schedule.start
    for decision in range(start, start + 9, 3):
        method.before_forward(decision)
    for lam, mean_rank, n_prune in zip(method.penalty, method.mean_rank, method.to_prune,
                                       strict=True):
        order = torch.argsort(rank_of(mean_rank))  # least important first
        by_rank = lam[order]
        assert bool((by_rank[1:] <= by_rank[:-1]).all())  # never more for a better rank
        assert by_rank[0] == pytest.approx(3 * 0.1)  # three full increments
        assert by_rank[-1] == 0.0 and int((lam > 0).sum()) >= n_prune
    layer = job.structure.groups[0]
    for p in job.model.parameters():
        p.grad = torch.zeros_like(p)
    method.before_step(start + 9)
    weight = layer.params[0][1]
    expected = method.penalty[0].float()[:, None] * weight.detach()
    assert torch.allclose(weight.grad, expected)


def test_a_group_whose_penalty_reaches_the_target_is_removed():
    job = prepare(TrainConfig(**SMALL_MLP, method="increg", prune_interval=1, prune_start=0.1,
                              prune_end=0.9, increg_increment=0.5, increg_target=1.0))
    method = job.method
    start = method.schedule.start
    method.before_forward(start)
    assert all(bool(k.all()) for k in method.keep)  # 0.5 < 1: nobody yet
    method.before_forward(start + 1)
    removed = ~method.keep[0]
    assert 0 < int(removed.sum()) <= method.to_prune[0]
    assert bool((method.penalty[0][removed] >= 1.0).all()) or method.penalty[0].eq(0).all()
    assert not bool(job.structure.groups[0].alive()[removed].any())


@pytest.mark.parametrize("values", [SMALL_MLP, SMALL_CNN], ids=["mlp", "cnn-small"])
def test_the_target_is_reached_on_digits_and_pruned_groups_are_exactly_zero(monkeypatch, values):
    events, summary, job = run(monkeypatch, **values, method="increg", prune_interval=2,
                               target="params", target_ratio=0.6)
    assert_reaches_target(events, "params", 0.6)
    assert_pruned_groups_exactly_zero(job)
    assert summary["test_accuracy"] > 0.5
    assert all(bool(lam.eq(0).all()) for lam in job.method.penalty)  # fine-tuned unpenalised
