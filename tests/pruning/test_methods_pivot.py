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
from pruning.methods.common import sample_batch
from pruning.methods.pivot import Pivot, pivot_order


def test_pivoting_keeps_a_spanning_set():
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(100, 3, generator=generator, dtype=torch.float64)
    columns = torch.cat([base, base @ torch.tensor([[1.0], [2.0], [0.0]], dtype=torch.float64),
                         base[:, :1] * 3], 1)  # columns 3 and 4 lie in the span of 0..2
    order = pivot_order(columns, torch.ones(5, dtype=torch.bool), 3)
    kept = columns[:, order]
    fit = torch.linalg.lstsq(kept, columns).solution
    assert torch.allclose(kept @ fit, columns, atol=1e-9)


def test_a_redundant_unit_is_removed_without_changing_the_function():
    job = prepare(TrainConfig(**SMALL_MLP, method="pivot"))
    method = job.method
    assert isinstance(method, Pivot)
    layer = job.structure.groups[0]
    with torch.no_grad():
        for _, p in layer.params:
            p[5] = p[2]  # unit 5 duplicates unit 2: same output, so it is redundant
    # The function is kept on the data the pivoting looked at (a unit silent there may not be
    # silent elsewhere).
    samples, _ = sample_batch(job, job.config.prune_samples, salt=0)
    before = job.model(samples).detach()
    silent = job.model.features[:3](samples).eq(0).all(0)  # ReLU outputs that are always 0
    counts = [g.num_units for g in job.structure.groups]
    redundant = {2, 5} | set(silent.nonzero().flatten().tolist())
    counts[0] -= len(redundant) - 1  # all but one of the duplicates: the rest spans them
    method.set_keep(method.select(counts, step=0))
    removed = (~method.keep[0]).nonzero().flatten().tolist()
    assert set(removed) <= redundant and len({2, 5} & set(removed)) == 1
    assert not bool(layer.alive()[removed].any())
    assert torch.allclose(job.model(samples), before, atol=1e-5)


def test_the_target_is_reached_on_digits_and_pruned_groups_are_exactly_zero(monkeypatch):
    events, summary, job = run(monkeypatch, **SMALL_CNN, method="pivot", target="params")
    assert_reaches_target(events, "params")
    assert_pruned_groups_exactly_zero(job)
    assert summary["test_accuracy"] > 0.5
