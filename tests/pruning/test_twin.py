"""The SGD twin: same initial weights, same minibatches in the same order, same schedule."""

import importlib

import pytest
import torch

from pruning import ConfigError, TrainConfig, TrainingStopped, train

# `pruning.train` is also the name of the function the package exports.
train_module = importlib.import_module("pruning.train")
RUN = dict(model="mlp", dataset="digits", mlp_widths=(32, 16), epochs=3, batch_size=64,
           log_interval=5, lr=0.5, compact=False, schedule="step")


def collect(config, **kwargs):
    events = []
    summary = train(config, events.append, **kwargs)
    return events, summary


def train_metrics(events):
    return [{k: v for k, v in e.items() if k != "elapsed_s"} for e in events
            if e["type"] == "train"]


def test_the_twin_sees_the_same_minibatches_in_the_same_order(monkeypatch):
    seen = {"run": [], "twin": []}
    prepare = train_module.prepare

    def recording_prepare(config, *args, **kwargs):
        job = prepare(config, *args, **kwargs)
        for name, model in (("run", job.model), ("twin", job.twin.model)):
            def record(module, args, name=name):
                if module.training:
                    seen[name].append(args[0].clone())
            model.register_forward_pre_hook(record)
        return job

    monkeypatch.setattr(train_module, "prepare", recording_prepare)
    train(TrainConfig(**RUN, reference="sgd"))
    assert len(seen["run"]) == len(seen["twin"]) == 3 * (1437 // 64)
    assert all(torch.equal(a, b) for a, b in zip(seen["run"], seen["twin"], strict=True))
    # Distinct batches, not one batch repeated.
    assert not torch.equal(seen["run"][0], seen["run"][1])


def test_the_twin_follows_exactly_a_separate_sgd_run():
    events, _ = collect(TrainConfig(**RUN, reference="sgd"))
    sgd_events, sgd_summary = collect(TrainConfig(**{**RUN, "method": "sgd"}))
    twin_losses = [e["reference_train_loss"] for e in events if e["type"] == "train"]
    sgd_losses = [e["train_loss"] for e in sgd_events if e["type"] == "train"]
    assert twin_losses == pytest.approx(sgd_losses, rel=1e-6)
    twin_accuracy = [e["reference_test_accuracy"] for e in events if e["type"] == "eval"]
    assert twin_accuracy == [e["test_accuracy"] for e in sgd_events if e["type"] == "eval"]
    # The pruned run itself is unchanged by training a twin beside it.
    alone, _ = collect(TrainConfig(**RUN))
    assert ([e["train_loss"] for e in events if e["type"] == "train"]
            == [e["train_loss"] for e in alone if e["type"] == "train"])


def test_a_run_with_a_twin_resumes_bit_identically(tmp_path):
    config = TrainConfig(**RUN, reference="sgd", checkpoint_dir=str(tmp_path))
    full, _ = collect(config)
    steps = iter(range(10_000))
    with pytest.raises(TrainingStopped):
        collect(config, should_stop=lambda: next(steps) == 30)
    resumed, _ = collect(config, resume_from=tmp_path)
    keys = ("train_loss", "reference_train_loss")
    after = [[e[k] for k in keys] for e in full if e["type"] == "train" and e["step"] > 22]
    assert [[e[k] for k in keys] for e in resumed if e["type"] == "train"] == after


def test_twin_settings_are_checked():
    with pytest.raises(ConfigError, match="reference"):
        TrainConfig.from_dict(dict(method="sgd", reference="sgd"))
    with pytest.raises(ConfigError, match="valley_interval"):
        TrainConfig.from_dict(dict(valley_interval=2))
    with pytest.raises(ConfigError, match=r"analyses\.1"):
        TrainConfig.from_dict(dict(analyses=("linear", "contour")))


def test_the_live_valley_check_measures_the_line_and_changes_nothing_else():
    with_check, _ = collect(TrainConfig(**RUN, reference="sgd", valley_interval=1))
    without, _ = collect(TrainConfig(**RUN, reference="sgd"))
    valley = [e for e in with_check if e["type"] == "valley"]
    assert [e["epoch"] for e in valley] == [0, 1, 2]
    assert train_metrics(with_check) == train_metrics(without)
    for event in valley:
        assert event["t"][0] == 0 and event["t"][-1] == 1 and len(event["t"]) == 11
        losses = event["train_loss"]
        assert all(loss > 0 for loss in losses)
        assert event["barrier_above_ends"] == pytest.approx(
        max(losses) - max(losses[0], losses[-1]))
    # t = 0 is the twin's weights: at the last check its loss is close to the twin's own
    # train loss of that interval (a running mean, so not equal).
    last_twin_loss = [e["reference_train_loss"] for e in with_check if e["type"] == "train"][-1]
    assert valley[-1]["train_loss"][0] == pytest.approx(last_twin_loss, rel=0.5)


def test_a_baselines_twin_trains_with_its_momentum_and_weight_decay():
    baseline = dict(RUN, c=0.015, method="l1-filter", momentum=0.9, weight_decay=1e-4,
                    epochs=2)
    events, _ = collect(TrainConfig(**baseline, reference="sgd"))
    dense, _ = collect(TrainConfig(**{**baseline, "method": "sgd"}))
    twin_losses = [e["reference_train_loss"] for e in events if e["type"] == "train"]
    assert twin_losses == pytest.approx([e["train_loss"] for e in dense if e["type"] == "train"],
                                        rel=1e-6)
