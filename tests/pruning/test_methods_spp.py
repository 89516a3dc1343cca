import pytest
import torch
from method_runs import (
    SMALL_CNN,
    SMALL_MLP,
    assert_pruned_groups_exactly_zero,
    assert_reaches_target,
    run,
    without_timing,
)

from pruning import TrainConfig, train
from pruning.job import prepare
from pruning.methods.common import rank_increment
from pruning.methods.spp import SPP


def test_the_increment_is_centrally_symmetric_around_the_number_to_prune():
    delta = rank_increment(torch.arange(10), 4, 0.05)
    assert delta[0] == pytest.approx(0.05) and delta[4] == pytest.approx(0.0)
    assert delta[8:].tolist() == pytest.approx([-0.05, -0.05])
    assert torch.allclose(delta[1:4], -delta[5:8].flip(0))
    assert bool((delta[1:] <= delta[:-1]).all())


def fake_step(job, step):
    """One optimizer step around the method's hooks, with gradients of ones."""
    job.method.before_forward(step)
    snapshot = [p.detach().clone() for p in job.model.parameters()]
    for p in job.model.parameters():
        p.grad = torch.ones_like(p)
    job.method.before_step(step)
    job.optimizer.step()
    job.method.after_step(step)
    return snapshot


def draw(job, step):
    """The uniform number unit 0 of layer 0 is compared with at ``step`` (see SPP._sample)."""
    generator = torch.Generator().manual_seed(job.config.seed * 1_000_033 + step)
    return torch.rand(1, generator=generator, dtype=torch.float64).item()


def test_a_masked_group_keeps_its_weights_and_comes_back_when_its_probability_falls():
    job = prepare(TrainConfig(**SMALL_MLP, method="spp", prune_start=0.1, prune_end=0.9,
                              prune_interval=4, spp_increment=0.2))
    method, layer = job.method, job.structure.groups[0]
    assert isinstance(method, SPP)
    weight = layer.params[0][1]
    with torch.no_grad():
        weight[0].mul_(50.0)  # unit 0 is the most important of its layer
    method.probability[0][0] = 0.95  # ... yet almost certainly masked for now
    start = method.schedule.start
    step = next(s for s in range(start + 1, start + 200) if (s - start) % 4 and draw(job, s) < 0.95)
    before = weight[0].detach().clone()
    masked_forward = fake_step(job, step)[0]
    assert torch.equal(masked_forward[0], torch.zeros_like(before))  # gone from that pass
    assert torch.equal(weight[0], before)  # ... but not forgotten, and not trained
    assert bool(method.keep[0][0])
    for decision in range(start + 4, start + 44, 4):
        fake_step(job, decision)
    assert method.probability[0][0] < 0.1  # pulled down at every decision
    probability = float(method.probability[0][0])
    later = next(s for s in range(start + 45, start + 200) if (s - start) % 4
                 and draw(job, s) >= probability)
    fake_step(job, later)
    assert not torch.equal(weight[0], before)  # it is back and trains again


@pytest.mark.parametrize("values", [SMALL_MLP, SMALL_CNN], ids=["mlp", "cnn-small"])
def test_the_target_is_reached_on_digits_and_pruned_groups_are_exactly_zero(monkeypatch, values):
    events, summary, job = run(monkeypatch, **values, method="spp", prune_interval=2,
                               spp_increment=0.1)
    assert_reaches_target(events)
    assert_pruned_groups_exactly_zero(job)
    assert summary["test_accuracy"] > 0.5
    probabilities = torch.cat(job.method.probability)
    assert set(probabilities.tolist()) == {0.0, 1.0}  # decided at prune_end


def test_resuming_while_masks_are_sampled_continues_bit_identically(tmp_path):
    values = dict(SMALL_MLP, method="spp", prune_start=0.2, prune_end=0.8, prune_interval=3,
                  spp_increment=0.1)
    full = []
    train(TrainConfig(**values), full.append)
    interrupted = TrainConfig(**values, checkpoint_dir=str(tmp_path), checkpoint_interval=31)
    stopped = []
    with pytest.raises(Exception, match="after step 40"):
        train(interrupted, stopped.append,
              should_stop=lambda: len(stopped) and stopped[-1]["step"] == 40)
    resumed = []
    train(interrupted, resumed.append, resume_from=tmp_path)
    assert resumed[0]["step"] == 31
    after = [e for e in without_timing(full) if e["step"] > 31 and e["type"] != "start"]
    assert [e for e in without_timing(resumed) if e["type"] not in ("start", "checkpoint")] == after
    assert any(0 < e.get("mean_pruning_probability", 0) < 1 for e in after)
