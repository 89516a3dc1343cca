"""Reported accuracy with BatchNorm statistics re-estimated for the weights (pruning.bn_stats)."""

import copy
import importlib
import math

import pytest
import torch
import torch.nn.functional as F

from pruning import TrainConfig, TrainingStopped, load_compact, train
from pruning.bn_stats import ReportedEvaluation, _batch_size
from pruning.data import load_dataset
from pruning.evaluate import evaluate
from pruning.job import prepare
from pruning.valley import batchnorm_layers, reestimate_batchnorm

# `pruning.train` is also the name of the function the package exports.
train_module = importlib.import_module("pruning.train")

RUN = dict(model="cnn-small", dataset="digits", epochs=2, batch_size=64, log_interval=5,
           compact=False)


def collect(config, **kwargs):
    events = []
    summary = train(config, events.append, **kwargs)
    return events, summary


def of_type(events, kind):
    return [{k: v for k, v in e.items() if k not in ("elapsed_s", "path")} for e in events
            if e["type"] == kind]


def trained_job(steps=6, **overrides):
    """A cnn-small job after a few SGD steps, so its running statistics lag its weights."""
    job = prepare(TrainConfig(**{**RUN, "method": "sgd", "momentum": 0.9, **overrides}))
    job.model.train()
    for step in range(steps):
        batch = slice(step * 64, (step + 1) * 64)
        loss = F.cross_entropy(job.model(job.data.train_x[batch]), job.data.train_y[batch])
        job.optimizer.zero_grad()
        loss.backward()
        job.optimizer.step()
    return job


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def bn_keys(model):
    return {f"{name}.{buffer}" for name, module in model.named_modules()
            if module in batchnorm_layers(model)
            for buffer in ("running_mean", "running_var", "num_batches_tracked")}


def test_reestimation_changes_batchnorm_buffers_only_and_reporting_restores_them():
    job = trained_job()
    model = job.model
    model.register_buffer("marker", torch.arange(5.0))  # a buffer that is not BatchNorm's
    reported = ReportedEvaluation.for_config(job.config, job.data)
    before = state(model)

    result = reported.evaluate(model, job.data, job.device)
    after = state(model)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)  # every buffer put back
    assert model.training  # and the mode
    assert {"running_stats_test_loss", "running_stats_test_accuracy"} <= result.keys()
    assert result["test_loss"] != result["running_stats_test_loss"]

    assert reported.adopt(model)  # for good, as at a run's end
    adopted = state(model)
    bn = bn_keys(model)
    assert len(bn) == 3 * 3 and bn < before.keys()
    for key in before:
        if key in bn:
            # num_batches_tracked counts the re-estimation's batches: 1024 samples of 64.
            assert not torch.equal(adopted[key], before[key]), key
        else:
            assert torch.equal(adopted[key], before[key]), key  # parameters, the marker
    assert adopted["features.1.num_batches_tracked"].item() == 1024 // 64


def test_reported_accuracy_is_an_independently_reestimated_evaluation():
    job = trained_job(steps=8)
    reported = ReportedEvaluation.for_config(job.config, job.data).evaluate(
        job.model, job.data, job.device)

    # The subset as documented: the first 1024 of a permutation drawn with the seed, in data
    # order; BatchNorm re-estimated on it in batches of the job's batch size.
    chosen = torch.randperm(len(job.data.train_y), generator=torch.Generator().manual_seed(0))
    inputs = job.data.train_x[chosen[:1024].sort().values]
    independent = copy.deepcopy(job.model)
    reestimate_batchnorm(independent, inputs, batch_size=64)
    expected = evaluate(independent, job.data, job.device)
    raw = evaluate(job.model, job.data, job.device)

    assert reported["test_loss"] == expected["test_loss"]
    assert reported["test_accuracy"] == expected["test_accuracy"]
    assert reported["running_stats_test_loss"] == raw["test_loss"]
    assert reported["running_stats_test_accuracy"] == raw["test_accuracy"]


def test_a_model_without_batchnorm_is_evaluated_once_and_zero_samples_reports_running_stats():
    job = prepare(TrainConfig(**{**RUN, "model": "mlp", "mlp_widths": (32, 16)}))
    result = ReportedEvaluation.for_config(job.config, job.data).evaluate(
        job.model, job.data, job.device)
    assert result == evaluate(job.model, job.data, job.device)  # no running_stats_ duplicate

    job = trained_job(bn_samples=0)
    off = ReportedEvaluation.for_config(job.config, job.data)
    before = state(job.model)
    assert off.evaluate(job.model, job.data, job.device) == evaluate(job.model, job.data,
                                                                     job.device)
    assert off.adopt(job.model) is False
    assert all(torch.equal(v, before[k]) for k, v in state(job.model).items())


def test_no_reestimation_batch_holds_a_single_sample():
    # reestimate_batchnorm splits N samples into ⌈N / b⌉ near-equal batches.
    for batch_size in range(1, 70):
        b = _batch_size(batch_size)
        assert b >= batch_size
        for count in range(2, 600):
            assert count // math.ceil(count / b) >= 2, (batch_size, count)


def test_training_is_unchanged_by_the_reestimation_and_resumes_bit_identically(tmp_path):
    sdprun = {**RUN, "c": 0.05}  # its running statistics lag: the numbers differ
    off, _ = collect(TrainConfig(**sdprun, bn_samples=0))
    on, on_summary = collect(TrainConfig(**sdprun))
    assert of_type(on, "train") == of_type(off, "train")  # bit-identical losses and sparsity
    off_evals, on_evals = of_type(off, "eval"), of_type(on, "eval")
    assert all("running_stats_test_accuracy" not in e for e in off_evals)
    # The raw numbers are what the run reported before the feature, exactly.
    assert ([e["running_stats_test_accuracy"] for e in on_evals]
            == [e["test_accuracy"] for e in off_evals])
    assert ([e["running_stats_test_loss"] for e in on_evals]
            == [e["test_loss"] for e in off_evals])
    assert all(e["test_loss"] != e["running_stats_test_loss"] for e in on_evals)
    assert on_summary["test_accuracy"] == on_evals[-1]["test_accuracy"]
    assert on_summary["running_stats_test_accuracy"] == on_evals[-1]["running_stats_test_accuracy"]

    # Resume from a checkpoint in the middle of the second epoch: the re-estimation at the end
    # of the first left the saved running statistics untouched.
    config = TrainConfig(**sdprun, checkpoint_dir=str(tmp_path), checkpoint_interval=30)
    steps = iter(range(10_000))
    with pytest.raises(TrainingStopped, match="after step 30"):
        collect(config, should_stop=lambda: next(steps) == 29)
    resumed, resumed_summary = collect(config, resume_from=tmp_path)
    for kind in ("train", "eval"):
        assert of_type(resumed, kind) == [e for e in of_type(on, kind) if e["step"] > 30]
    on_summary.pop("elapsed_s"), resumed_summary.pop("elapsed_s")
    assert resumed_summary == on_summary


def test_a_dense_sgd_run_reports_what_its_running_statistics_give_up_to_noise():
    events, _ = collect(TrainConfig(**{**RUN, "epochs": 4, "method": "sgd", "momentum": 0.9,
                                       "schedule": "cosine"}))
    last = of_type(events, "eval")[-1]
    # At the end of a cosine schedule the lr is near 0, so the weights barely move over the ~20
    # batches (momentum 0.1) that the running statistics average; both estimates then describe
    # the same weights and differ only by sampling noise (~1200 against 1024 samples), which
    # flips a borderline prediction or two of the 360 digits test images (measured: 1). Three
    # images, and 5 % of the loss, is that noise; a lag as sdprun's moves tens of percent.
    assert abs(last["test_accuracy"] - last["running_stats_test_accuracy"]) <= 3 / 360
    assert last["test_loss"] == pytest.approx(last["running_stats_test_loss"], rel=0.05)


def test_the_compact_and_exported_networks_carry_the_reestimated_statistics(tmp_path):
    config = TrainConfig(**{**RUN, "epochs": 4, "c": 0.07, "compact": True,
                            "export_dir": str(tmp_path / "export"),
                            "checkpoint_dir": str(tmp_path / "checkpoints")})
    events, summary = collect(config)
    last = of_type(events, "eval")[-1]
    compact = summary["compact"]
    assert summary["group_sparsity"] > 0  # the compaction removed something
    assert compact["compact_params"] < compact["dense_params"]
    # Running statistics lag by far here (measured 10 % against 42 %), so equality below can only
    # come from the re-estimated statistics.
    assert last["running_stats_test_accuracy"] < last["test_accuracy"] - 0.1
    assert (compact["compact_test_accuracy"] == compact["pruned_test_accuracy"]
            == summary["test_accuracy"] == last["test_accuracy"])

    data = load_dataset("digits", seed=0)
    model = load_compact(tmp_path / "export")
    with torch.no_grad():
        logits = model(data.test_x)
    correct = (logits.argmax(1) == data.test_y).sum().item()
    assert correct / len(data.test_y) == last["test_accuracy"]
    assert F.cross_entropy(logits, data.test_y).item() == pytest.approx(last["test_loss"],
                                                                        rel=1e-4)
    # The final checkpoint keeps training's own running statistics (resume stays plain).
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    job = prepare(TrainConfig(**RUN))
    job.model.load_state_dict(checkpoint["model"])
    assert evaluate(job.model, job.data, job.device)["test_accuracy"] == \
        last["running_stats_test_accuracy"]
