"""``schedule_unit``: the lr schedule per step (the default, unchanged) or held per epoch."""

import importlib
import math

import pytest

from pruning import TrainConfig, train
from pruning.schedules import learning_rate

train_module = importlib.import_module("pruning.train")
SCHEDULES = (("step", (0.5, 0.75)), ("cosine", ()), ("grda-paper", ()))


def old_learning_rate(schedule, base_lr, step, total_steps, milestones=(), gamma=0.1):
    """The per-step formula before ``schedule_unit`` existed, verbatim."""
    t = step / max(total_steps, 1)
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        return base_lr * gamma ** sum(t >= m for m in milestones)
    if schedule == "cosine":
        return base_lr * (1 + math.cos(math.pi * t)) / 2
    if schedule == "grda-paper":
        if t < 0.5:
            return base_lr
        if t < 0.9:
            return base_lr * (1 - 0.99 * (t - 0.5) / 0.4)
        return base_lr * 0.01
    raise ValueError(schedule)


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "grda-paper"])
def test_the_per_step_default_is_unchanged_bit_for_bit(schedule):
    total = 997
    for step in (0, 1, 250, 498, 499, 500, 613, 747, 748, 897, 898, 996):
        old = old_learning_rate(schedule, 0.1, step, total, (0.5, 0.75), 0.1)
        assert learning_rate(schedule, 0.1, step, total, (0.5, 0.75), 0.1) == old
        assert learning_rate(schedule, 0.1, step, total, (0.5, 0.75), 0.1, unit="step",
                             steps_per_epoch=7) == old


@pytest.mark.parametrize(("schedule", "milestones"), SCHEDULES)
def test_per_epoch_lr_is_held_at_its_value_at_the_epochs_first_step(schedule, milestones):
    epochs, per_epoch = 160, 391
    total = epochs * per_epoch
    for epoch in (0, 1, 79, 80, 81, 119, 120, 143, 144, 159):
        first = epoch * per_epoch
        values = {learning_rate(schedule, 0.1, first + i, total, milestones, unit="epoch",
                                steps_per_epoch=per_epoch) for i in range(per_epoch)}
        assert values == {learning_rate(schedule, 0.1, first, total, milestones)}
        # t = epoch / epochs exactly.
        assert values == {old_learning_rate(schedule, 0.1, epoch, epochs, milestones)}
    # It does change between epochs (these schedules are not constant).
    per_epoch_values = [learning_rate(schedule, 0.1, e * per_epoch, total, milestones,
                                      unit="epoch", steps_per_epoch=per_epoch)
                        for e in range(epochs)]
    assert len(set(per_epoch_values)) > 1


def test_grda_paper_per_epoch_follows_the_authors_shape():
    # 50 %: constant; then linear to 1 % of base lr at 90 %; then flat.
    lr = [learning_rate("grda-paper", 1.0, e * 10, 1000, unit="epoch", steps_per_epoch=10)
          for e in range(100)]
    assert lr[:50] == [1.0] * 50
    assert lr[70] == pytest.approx(1 - 0.99 * 0.5)
    assert lr[90:] == [0.01] * 10
    assert all(a > b for a, b in zip(lr[50:90], lr[51:91], strict=True))


def test_constant_ignores_the_unit_and_bad_units_are_refused():
    assert learning_rate("constant", 0.3, 17, 100, unit="epoch", steps_per_epoch=9) == 0.3
    with pytest.raises(ValueError, match="unknown schedule unit 'batch'"):
        learning_rate("cosine", 0.1, 0, 10, unit="batch")
    with pytest.raises(ValueError, match="steps_per_epoch"):
        learning_rate("cosine", 0.1, 0, 10, unit="epoch", steps_per_epoch=0)


def test_a_run_with_schedule_unit_epoch_holds_lr_per_epoch(monkeypatch):
    jobs = []
    prepare = train_module.prepare

    def keeping_prepare(config, *args, **kwargs):
        jobs.append(prepare(config, *args, **kwargs))
        return jobs[-1]

    monkeypatch.setattr(train_module, "prepare", keeping_prepare)
    config = TrainConfig(model="mlp", dataset="digits", mlp_widths=(16,), epochs=4,
                         batch_size=256, log_interval=1, lr=0.2, compact=False,
                         method="sdprun", schedule="cosine", schedule_unit="epoch",
                         reference="sgd")
    events = []
    summary = train(config, events.append)
    assert 0 < summary["test_accuracy"] <= 1
    per_epoch = events[0]["steps_per_epoch"]
    trains = [e for e in events if e["type"] == "train"]
    assert len(trains) == 4 * per_epoch  # log_interval 1: one event per step
    by_epoch = {}
    for event in trains:
        assert event["epoch"] == (event["step"] - 1) // per_epoch
        by_epoch.setdefault(event["epoch"], set()).add(event["lr"])
    assert all(len(values) == 1 for values in by_epoch.values())
    held = [by_epoch[e].pop() for e in range(4)]
    assert held == [0.2 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    # The SGD twin got the same lr as the run.
    job = jobs[0]
    twin_lrs = {g["lr"] for g in job.twin.optimizer.param_groups}
    assert twin_lrs == {g["lr"] for g in job.optimizer.param_groups} == {held[-1]}
