"""The torch-free pruning forecast equals the engine's: the same lr and threshold path, the same
groups of the same layers, and, from expected initial norms, the same steps within 10 %."""

from __future__ import annotations

import random

import pytest
import torch

from pruneboard.spec import JobSpec
from pruneboard.spec.forecast import (
    architecture_groups,
    forecast_for,
    warning_text,
)
from pruneboard.spec.sizes import count_model
from pruneboard.spec.threshold_path import ThresholdPath
from pruning.config import TrainConfig
from pruning.forecast import death_steps, forecast, threshold_path
from pruning.groups import build_groups
from pruning.job import prepare
from pruning.models import build_model

SCHEDULES = [("constant", "step"), ("step", "step"), ("step", "epoch"), ("cosine", "step"),
             ("cosine", "epoch"), ("grda-paper", "step"), ("grda-paper", "epoch")]


@pytest.mark.parametrize("schedule, unit", SCHEDULES)
def test_the_threshold_path_is_the_optimizers(schedule, unit):
    total, per_epoch = 997, 37
    fields = {"schedule": schedule, "lr": 0.07, "c": 0.02, "mu": 0.55}
    if schedule != "constant":
        fields["schedule_unit"] = unit
    if schedule == "step":
        fields.update(lr_milestones=(0.3, 0.61), lr_gamma=0.2)
    config = JobSpec(**fields)
    exact = threshold_path(config, total, per_epoch)
    path = ThresholdPath.of(config, total, per_epoch)
    assert path.final == pytest.approx(exact[-1].item(), rel=1e-12)
    # Targets between every few steps' λ, and at random: the crossing step is the engine's (a
    # target equal to a step's λ may differ by the last bit of the closed form within a run).
    draws = random.Random(0)
    targets = [(exact[i].item() + exact[i + 1].item()) / 2 for i in range(0, total - 1, 7)]
    targets += [draws.uniform(0, exact[-1].item() * 1.05) for _ in range(300)]
    engine = death_steps(torch.tensor(targets, dtype=torch.float64), exact, 0).tolist()
    mine = [path.first_step(t) for t in targets]
    assert mine == [s if s <= total else None for s in engine]


def test_a_long_run_whose_lr_changes_every_step_is_summed_in_blocks_closely():
    config = JobSpec(schedule="cosine", c=0.005, mu=0.51)
    total = 400_000  # 20 steps a block
    exact = threshold_path(config, total, 1000)
    path = ThresholdPath.of(config, total, 1000)
    assert path.final == pytest.approx(exact[-1].item(), rel=1e-5)
    targets = torch.linspace(1e-4, exact[-1].item() * 0.999, 40, dtype=torch.float64)
    for target, step in zip(targets.tolist(), death_steps(targets, exact, 0).tolist(),
                            strict=True):
        assert abs(path.first_step(target) - step) <= max(1e-4 * step, 1)


def test_a_resumed_path_continues_from_its_step_and_threshold():
    config = JobSpec(schedule="cosine", c=0.02, mu=0.55)
    full = threshold_path(config, 500, 20)
    tail = threshold_path(config, 500, 20, start=200, threshold=full[199].item())
    assert torch.allclose(tail, full[200:], rtol=1e-12, atol=0)
    path = ThresholdPath.of(config, 500, 20, start=200, threshold=full[199].item())
    assert path.first_step(full[349].item()) == 350
    assert path.first_step(0.0) == 201


MODELS = ["mlp", "cnn-small", "vgg16-bn", "resnet20", "resnet56", "wrn-28-10"]


@pytest.mark.parametrize("model", MODELS)
def test_the_architecture_groups_are_the_dependency_graphs(model):
    shape = (3, 32, 32)
    with torch.device("meta"):
        network = build_model(model, input_shape=shape, num_classes=7, mlp_widths=(30, 20))
        engine = build_groups(network, shape)
    assert engine.groups and all(hasattr(g, "producers") for g in engine.groups)
    mine = architecture_groups(count_model(model, shape, 7, (30, 20)).layers)
    assert [(g.name, [p.name for p in g.producers], [n.name for n in g.norms], g.units,
             g.unit_size) for g in mine] == [
        (g.name, g.producers, g.norm_layers, g.num_units, g.unit_size) for g in engine.groups]


def test_excluded_layers_leave_their_group_dense():
    layers = count_model("resnet20", (3, 32, 32), 10).layers
    names = [g.name for g in architecture_groups(layers, exclude=("layer2.1",))]
    # layer2.1.conv2 writes into stage 2's stream: the whole stream stays dense with it.
    assert "layer2.1.conv1" not in names and "layer2.0.conv2" not in names
    assert "layer2.2.conv1" in names


def vgg(**fields) -> dict:
    return {"model": "vgg16-bn", "dataset": "synthetic", "synthetic_shape": (3, 32, 32),
            "epochs": 10, "device": "cpu", **fields}


# The audit's case: features.27–40 died at steps 165–200 of 320.
AUDIT = vgg(c=0.015, mu=0.6)


@pytest.mark.parametrize("fields", [
    AUDIT,
    vgg(c=0.015, mu=0.6, method="grda"),
    vgg(c=0.1, mu=0.6, group_weighting="batchnorm", epochs=500, synthetic_size=256),
    {"model": "resnet20", "dataset": "synthetic", "synthetic_shape": (3, 32, 32), "c": 0.015,
     "mu": 0.6, "epochs": 80, "device": "cpu"},
    {"model": "wrn-28-10", "dataset": "synthetic", "synthetic_shape": (3, 16, 16), "c": 0.015,
     "mu": 0.6, "epochs": 40, "synthetic_size": 256, "batch_size": 32, "device": "cpu"},
], ids=["vgg16-bn", "vgg16-bn-grda", "vgg16-bn-batchnorm", "resnet20", "wrn-28-10"])
def test_the_torch_free_forecast_agrees_with_the_engines(fields):
    config = TrainConfig(**fields)
    engine = forecast(prepare(config))
    mine = forecast_for(JobSpec(**fields))
    total = engine["total_steps"]
    assert mine["total_steps"] == total and engine["basis"] == "engine"
    assert [e["name"] for e in mine["layers"]] == [e["name"] for e in engine["layers"]]
    warned = 0
    for spec_layer, engine_layer in zip(mine["layers"], engine["layers"], strict=True):
        a, b = spec_layer["step"], engine_layer["step"]
        if a is not None and b is not None:
            assert abs(a - b) <= 0.1 * b, (spec_layer["name"], a, b)
            warned += 1
        else:  # warned by one only where the other's step is in the run's last tenth
            assert (a or b or total) >= 0.9 * total, (spec_layer["name"], a, b)
    assert warned, "the case should force some layer to zero"
    assert (mine["warning"] is None) == (engine["warning"] is None)


def test_the_audit_case_is_warned_in_words():
    warning = forecast_for(JobSpec(**AUDIT))["warning"]
    assert warning.startswith("features.27–40 will be forced to zero at step ~166, ")
    assert "of 320." in warning and "threshold alone" in warning and "ignoring the gradient" \
        in warning


def test_the_cifar_scale_defaults_force_nothing_in_the_audit_run():
    spec = JobSpec(**{k: v for k, v in AUDIT.items() if k not in ("c", "mu")})
    assert (spec.c, spec.mu) == (0.005, 0.51)
    result = forecast_for(spec)
    assert result["warning"] is None
    assert all(layer["step"] is None for layer in result["layers"])


def test_a_method_without_threshold_or_unknown_data_has_no_forecast():
    assert forecast_for(JobSpec(method="sgd")) is None
    assert forecast_for(JobSpec(model="resnet20", dataset="cifar10", data_dir="cifar")) is None


def entry(name, step):
    return {"name": name, "step": step}


def test_consecutive_layers_about_the_same_step_are_one_range_earliest_first():
    layers = [entry("features.0", None), entry("features.3", 300), entry("features.7", 310),
              entry("features.10", 200), entry("features.14", None), entry("features.17", 150),
              entry("layer3.0.conv1", 90), entry("layer3.1.conv1", 92)]
    text = warning_text(layers, 320, "sdprun", "elements")
    assert text.startswith("layer3.0–1.conv1 will be forced to zero at steps ~90–92, "
                           "features.17 at step ~150, features.10 at step ~200 and "
                           "features.3–7 at steps ~300–310 of 320. This is the threshold alone")
    many = [entry(f"features.{i}", 10 * 2**i) for i in range(6)]  # each its own run
    assert "features.3 at step ~80 and 2 more layers by step ~320 of 400." in warning_text(
        [*many[:4], entry("x", None), many[4], entry("y", None), many[5]], 400, "sdprun")
    assert warning_text([entry("a", None)], 320, "sdprun") is None
    grda = warning_text([entry("features.0", 50)], 320, "grda")
    assert grda.startswith("half the weights of features.0 will be zero by step ~50 of 320.")
