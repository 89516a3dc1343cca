import torch
import torch.nn.functional as F
from method_runs import (
    SMALL_MLP,
    assert_pruned_groups_exactly_zero,
    assert_reaches_target,
    run,
)

from pruning import TrainConfig
from pruning.job import prepare
from pruning.methods.common import keep_counts, sample_batch
from pruning.methods.gfs import GreedyForwardSelection


def test_each_addition_is_the_best_candidate_and_the_loss_falls_monotonically():
    job = prepare(TrainConfig(**SMALL_MLP, method="gfs", prune_samples=64))
    for step in range(40):  # a briefly trained network, as GFS starts from one
        batch = torch.arange(step % 22 * 64, step % 22 * 64 + 64)
        loss = F.cross_entropy(job.model(job.data.train_x[batch]), job.data.train_y[batch])
        job.optimizer.zero_grad()
        loss.backward()
        job.optimizer.step()
    method = job.method
    assert isinstance(method, GreedyForwardSelection)
    layer = job.structure.groups[0]
    inputs, targets = sample_batch(job, 64, salt=method.schedule.start)
    singles = []
    with torch.no_grad():
        dense = [p.detach().clone() for _, p in layer.params]
        for unit in range(layer.num_units):
            for (_, p), original in zip(layer.params, dense, strict=True):
                p.copy_(original)
                p[torch.arange(layer.num_units) != unit] = 0
            singles.append(float(F.cross_entropy(job.model(inputs), targets)))
        for (_, p), original in zip(layer.params, dense, strict=True):
            p.copy_(original)
    method.before_forward(method.schedule.start)
    first_layer_losses = method.selection_losses[0]
    assert abs(first_layer_losses[0] - min(singles)) < 1e-5  # the best single unit came first
    counts = keep_counts(job, job.config.target_ratio)
    for losses, count in zip(method.selection_losses, counts, strict=True):
        assert len(losses) == count
        assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))
        assert losses[-1] < losses[0]
    assert [int(g.alive().sum()) for g in job.structure.groups] == counts


def test_the_target_is_reached_on_digits_and_pruned_groups_are_exactly_zero(monkeypatch):
    events, summary, job = run(monkeypatch, **SMALL_MLP, method="gfs", prune_samples=64,
                               target="params", target_ratio=0.6)
    assert_reaches_target(events, "params", 0.6)
    assert_pruned_groups_exactly_zero(job)
    assert summary["test_accuracy"] > 0.5
