import pytest
import torch
from cifar_files import write_cifar10

import pruning.job
from pruning import ConfigError, TrainConfig, TrainingError, TrainingStopped, train
from pruning.checkpoint import CheckpointError
from pruning.schedules import learning_rate

SMALL = dict(model="mlp", dataset="digits", mlp_widths=(32, 16), epochs=3, batch_size=64,
             log_interval=5, lr=0.5, compact=False)


def collect(config, **kwargs):
    events = []
    summary = train(config, events.append, **kwargs)
    return events, summary


def without_timing(events):
    def strip(record):
        return {k: strip(v) if isinstance(v, dict) else v for k, v in record.items()
                if k not in ("elapsed_s", "path")}
    return [strip(e) for e in events]


def test_the_same_config_gives_bit_identical_metrics():
    config = TrainConfig(**SMALL)
    first, _ = collect(config)
    second, _ = collect(config)
    assert without_timing(first) == without_timing(second)
    kinds = [e["type"] for e in first]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert kinds.count("eval") == 3
    train_event = next(e for e in first if e["type"] == "train")
    for key in ("train_loss", "lr", "threshold", "weight_sparsity", "group_sparsity",
                "remaining_params", "remaining_flops", "norm_ratio", "layer_group_sparsity"):
        assert key in train_event
    # The run really pruned: the comparison covers the shrinkage, not just dense training.
    assert first[-1]["summary"]["group_sparsity"] > 0


def test_resuming_from_a_checkpoint_continues_bit_identically(tmp_path):
    config = TrainConfig(**SMALL)
    full, full_summary = collect(config)

    interrupted = TrainConfig(**SMALL, checkpoint_dir=str(tmp_path), checkpoint_interval=7)
    steps = iter(range(10_000))
    with pytest.raises(TrainingStopped, match="after step 30"):
        # Step 28 is a checkpoint in the middle of an epoch and of a log interval.
        collect(interrupted, should_stop=lambda: next(steps) == 29)
    resumed, resumed_summary = collect(interrupted, resume_from=tmp_path)

    assert resumed[0]["step"] == 28
    after = [e for e in without_timing(full) if e["step"] > 28 and e["type"] != "start"]
    resumed_after = [e for e in without_timing(resumed)
                     if e["type"] not in ("start", "checkpoint")]
    assert resumed_after == after
    full_summary.pop("elapsed_s"), resumed_summary.pop("elapsed_s")
    assert resumed_summary == full_summary


def test_a_checkpoint_from_another_config_is_refused(tmp_path):
    collect(TrainConfig(**{**SMALL, "epochs": 1}, checkpoint_dir=str(tmp_path)))
    other = TrainConfig(**{**SMALL, "lr": 0.2})
    with pytest.raises(CheckpointError, match="different lr"):
        train(other, resume_from=tmp_path)
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        train(TrainConfig(**SMALL), resume_from=tmp_path)


def test_a_nan_loss_ends_the_run_with_an_error_event(monkeypatch):
    real_build = pruning.job.build_model

    def diverging_model(*args, **kwargs):
        model = real_build(*args, **kwargs)
        calls = iter(range(10_000))
        # From the 8th forward pass on, the logits blow up as a diverging run's would.
        model.register_forward_hook(lambda m, i, out: out * float("nan")
                                    if next(calls) >= 7 else out)
        return model

    monkeypatch.setattr(pruning.job, "build_model", diverging_model)
    events = []
    with pytest.raises(TrainingError, match="training loss became nan at step 10"):
        train(TrainConfig(**SMALL), events.append)
    assert events[-1]["type"] == "error" and "nan" in events[-1]["message"]
    assert [e["type"] for e in events].count("train") == 1  # step 5 was still fine


def test_step_schedule_and_grda_and_sgd_run():
    for method, extra in (("grda", {"c": 0.02}), ("sgd", {"momentum": 0.9})):
        config = TrainConfig(**{**SMALL, **extra, "method": method, "schedule": "step"})
        events, summary = collect(config)
        lrs = [e["lr"] for e in events if e["type"] == "train"]
        total = events[0]["total_steps"]
        expected = [learning_rate("step", 0.5, e["step"] - 1, total, (0.5, 0.75), 0.1)
                    for e in events if e["type"] == "train"]
        assert lrs == expected and lrs[0] == 0.5 and lrs[-1] == pytest.approx(0.005)
        assert 0 < summary["test_accuracy"] <= 1
    assert summary["group_sparsity"] == 0  # sgd prunes nothing


def test_top5_is_reported_with_many_classes():
    config = TrainConfig(**{**SMALL, "dataset": "synthetic", "synthetic_classes": 20,
                            "synthetic_size": 256, "epochs": 1})
    events, summary = collect(config)
    assert 0 <= summary["test_top5"] <= 1 and summary["test_top5"] >= summary["test_accuracy"]


def test_cifar_files_train_with_augmentation(tmp_path):
    write_cifar10(tmp_path / "cifar-10-batches-py", per_batch=8)
    config = TrainConfig(model="cnn-small", dataset="cifar10", data_dir=str(tmp_path),
                         epochs=2, batch_size=8, log_interval=2, compact=False)
    first, _ = collect(config)
    second, _ = collect(config)
    assert first[0]["total_steps"] == 10
    assert without_timing(first) == without_timing(second)  # augmentation is seeded


def test_setup_errors_name_the_field():
    # The spec refuses these before any run; the engine, given them unvalidated, refuses too.
    for values, message in (({"batch_size": 5000}, "batch_size: must be at most the 1437"),
                            ({"model": "vgg16-bn", "mlp_widths": (300, 100)},
                             "needs inputs of at least 32x32")):
        with pytest.raises(ConfigError, match=message):
            TrainConfig.from_dict({**SMALL, **values})
        unchecked = TrainConfig.model_construct(**{**TrainConfig().to_dict(), **SMALL, **values})
        with pytest.raises(ConfigError, match=message):
            train(unchecked)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device: cuda was asked for"):
            train(TrainConfig(**{**SMALL, "device": "cuda"}))


def test_a_requeued_job_may_resume_on_another_device_or_data_folder(tmp_path):
    collect(TrainConfig(**{**SMALL, "epochs": 1}, checkpoint_dir=str(tmp_path), device="auto"))
    moved = TrainConfig(**SMALL, checkpoint_dir=str(tmp_path), device="cpu")
    events, _ = collect(moved, resume_from=tmp_path)
    assert events[0]["step"] == events[0]["steps_per_epoch"]


def test_a_checkpoint_from_before_new_config_fields_resumes(tmp_path):
    config = TrainConfig(**SMALL, checkpoint_dir=str(tmp_path))
    steps = iter(range(10_000))
    with pytest.raises(TrainingStopped):
        collect(config, should_stop=lambda: next(steps) == 21)
    # As an older version wrote it: no twin or baseline fields, a single running loss sum.
    path = tmp_path / "last.pt"
    payload = torch.load(path, weights_only=True)
    for name in ("reference", "valley_interval", "analyses", "compact", "export_dir",
                 "target", "target_ratio", "prune_start", "prune_end"):
        payload["config"].pop(name)
    payload["loss_sum"] = payload["loss_sum"][0]
    torch.save(payload, path)
    resumed, summary = collect(config, resume_from=tmp_path)
    assert resumed[0]["step"] == 22 and summary["steps"] == 3 * (1437 // 64)
