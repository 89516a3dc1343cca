import pytest
import torch
from method_runs import (
    SMALL_CNN,
    SMALL_MLP,
    assert_pruned_groups_exactly_zero,
    assert_reaches_target,
    last_train,
    run,
    without_timing,
)

from pruning import ConfigError, TrainConfig, train
from pruning.job import prepare
from pruning.methods.common import Schedule, keep_counts, weight_l1
from pruning.methods.l1_filter import L1Filter


def test_one_shot_pruning_keeps_the_filters_of_largest_l1_norm():
    config = TrainConfig(**SMALL_CNN, method="l1-filter", prune_start=0.5, prune_end=0.5)
    job = prepare(config)
    assert isinstance(job.method, L1Filter)
    norms = [weight_l1(g).clone() for g in job.structure.groups]
    counts = keep_counts(job, 0.5)
    job.method.before_forward(Schedule(job).start - 1)
    assert all(bool(g.alive().all()) for g in job.structure.groups)  # not due yet
    job.method.before_forward(Schedule(job).start)
    for group, norm, count in zip(job.structure.groups, norms, counts, strict=True):
        alive = group.alive()
        assert int(alive.sum()) == count < group.num_units
        assert norm[alive].min() >= norm[~alive].max()


def test_iterative_pruning_removes_more_at_each_decision(monkeypatch):
    events, _, _ = run(monkeypatch, **SMALL_MLP, method="l1-filter", prune_start=0.2,
                       prune_end=0.7, prune_interval=5)
    flops = [e["remaining_flops"] for e in events if e["type"] == "train"]
    assert flops == sorted(flops, reverse=True)
    assert len(set(flops)) > 4  # several steps down, not one


@pytest.mark.parametrize("values, kind, ratio", [
    (SMALL_MLP, "flops", 0.5),
    (SMALL_MLP, "params", 0.7),
    (SMALL_CNN, "flops", 0.5),
])
def test_the_target_is_reached_on_digits_and_pruned_groups_are_exactly_zero(
        monkeypatch, values, kind, ratio):
    events, summary, job = run(monkeypatch, **values, method="l1-filter", target=kind,
                               target_ratio=ratio)
    assert_reaches_target(events, kind, ratio)
    assert_pruned_groups_exactly_zero(job)
    assert summary["test_accuracy"] > 0.5
    assert last_train(events)["target_progress"] >= 1.0


def test_resuming_mid_pruning_continues_bit_identically(tmp_path):
    values = dict(SMALL_MLP, method="l1-filter", weight_decay=5e-4, prune_start=0.2,
                  prune_end=0.8, prune_interval=3)
    full = []
    train(TrainConfig(**values), full.append)
    interrupted = TrainConfig(**values, checkpoint_dir=str(tmp_path), checkpoint_interval=31)
    stopped = []
    with pytest.raises(Exception, match="after step 40"):
        train(interrupted, stopped.append, should_stop=lambda: len(stopped) and
              stopped[-1]["step"] == 40)
    resumed = []
    train(interrupted, resumed.append, resume_from=tmp_path)
    assert resumed[0]["step"] == 31
    after = [e for e in without_timing(full) if e["step"] > 31 and e["type"] != "start"]
    assert [e for e in without_timing(resumed) if e["type"] not in ("start", "checkpoint")] == after
    assert any(e.get("group_sparsity", 0) > 0 for e in after)


def test_the_baselines_fields_are_refused_for_other_methods():
    with pytest.raises(ConfigError, match="read only by method l1-filter") as caught:
        TrainConfig.from_dict(dict(method="sdprun", target_ratio=0.3))
    assert caught.value.field == "target_ratio"
    with pytest.raises(ConfigError, match="must be at least prune_start"):
        TrainConfig.from_dict(dict(method="l1-filter", prune_start=0.5, prune_end=0.4))
    assert TrainConfig(method="l1-filter", momentum=0.9, weight_decay=1e-4).momentum == 0.9
    assert torch.optim.SGD is type(prepare(TrainConfig(**SMALL_MLP, method="l1-filter")).optimizer)
