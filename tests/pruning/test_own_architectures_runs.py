"""Training runs on architectures of one's own (tests/support/own_models.py), through the engine
with ``train(config, model=module)``: the FLOPs target is really met, and the compact network
and its exported files compute what the pruned network does."""

from __future__ import annotations

import pytest
import torch
from own_models import INPUT_SHAPE, MODELS, NUM_CLASSES, make
from torch import nn

from pruning import TrainConfig, train
from pruning.compact import compact, export_compact, load_compact
from pruning.groups import build_groups

DATA = dict(dataset="synthetic", synthetic_shape=INPUT_SHAPE, synthetic_classes=NUM_CLASSES,
            synthetic_size=256, epochs=2, batch_size=32, log_interval=4, bn_samples=64,
            device="cpu")
L1 = dict(method="l1-filter", target="flops", target_ratio=0.3, prune_start=0.25,
          prune_end=0.5, prune_interval=2, lr=0.05, momentum=0.9)
# c large enough that 16 steps of sDprun remove some groups of each network, not all.
SDPRUN_C = {"mobilenetish": 0.45, "densenetish": 0.3, "tinyvit": 0.3}


pytestmark = pytest.mark.usefixtures("one_thread")


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got - expected).abs().max() / expected.abs().max()).item()


def outputs(model: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    x = torch.randn(8, *INPUT_SHAPE, generator=torch.Generator().manual_seed(3), dtype=dtype)
    with torch.no_grad():
        return model.eval()(x)


def run(name: str, method: str, export_dir) -> tuple[nn.Module, list[dict], dict]:
    values = dict(L1) if method == "l1-filter" else dict(method="sdprun", lr=0.1,
                                                        c=SDPRUN_C[name], mu=0.6)
    module = make(name)
    events: list[dict] = []
    config = TrainConfig.from_dict(dict(DATA, model=name, export_dir=str(export_dir), **values))
    summary = train(config, events.append, model=module)
    return module, events, summary


@pytest.mark.parametrize("method", ["l1-filter", "sdprun"])
@pytest.mark.parametrize("name", list(MODELS))
def test_a_run_prunes_and_its_compact_network_and_files_are_exact(name, method, tmp_path):
    module, events, summary = run(name, method, tmp_path / "export")
    assert "compact_error" not in summary
    last = [e for e in events if e["type"] == "train"][-1]
    report = summary["compact"]
    measured = report["compact_flops"] / report["dense_flops"]  # torch's own FLOP counter
    if method == "l1-filter":
        assert last["remaining_flops"] <= 0.7 + 1e-9
        # Counted on the compact network itself, attention's products (never pruned) included.
        assert measured <= 0.75
    else:
        assert last["group_sparsity"] > 0 and measured < 1.0
    assert report["compact_params"] < report["dense_params"] and report["accuracy_equal"]

    # The trained (masked) network, in float64: the compact one computes the same.
    masked = module.double().eval()
    small = compact(masked, build_groups(masked, INPUT_SHAPE), input_shape=INPUT_SHAPE)
    expected = outputs(masked, torch.float64)
    assert relative_error(expected, expected[:1].expand_as(expected)) > 1e-3  # not constant
    assert relative_error(outputs(small, torch.float64), expected) <= 1e-6
    export_compact(small, tmp_path / "float64", input_shape=INPUT_SHAPE,
                   formats=("safetensors",))
    loaded = load_compact(tmp_path / "float64")
    assert relative_error(outputs(loaded, torch.float64), expected) <= 1e-6
    # The run's own files (float32) hold the same network.
    from_run = load_compact(tmp_path / "export")
    assert {e["path"] for e in events if e["type"] == "artifact"} >= {"model.json",
                                                                     "model.safetensors"}
    assert relative_error(outputs(from_run, torch.float32),
                          outputs(module.float(), torch.float32)) <= 1e-4


BASELINES = ("spp", "increg", "gfs", "eigendamage", "pivot")
DATA_DRIVEN = ("gfs", "eigendamage", "pivot")


@pytest.mark.parametrize("method", BASELINES)
@pytest.mark.parametrize("name", list(MODELS))
def test_every_baseline_meets_its_target_on_a_network_of_ones_own(name, method):
    """The selections read a group's units where its consumers find them: at an offset after a
    concatenation, on the last axis of a token sequence (a Linear on (batch, tokens, features))."""
    values = dict(L1, method=method, **({"prune_samples": 64} if method in DATA_DRIVEN else {}))
    module = make(name)
    summary = train(TrainConfig.from_dict(dict(DATA, model=name, **values)), model=module)
    assert "compact_error" not in summary
    assert summary["remaining_flops"] <= 0.7 + 1e-9
    assert summary["compact"]["accuracy_equal"]
    masked = module.double().eval()
    small = compact(masked, build_groups(masked, INPUT_SHAPE), input_shape=INPUT_SHAPE)
    assert relative_error(outputs(small, torch.float64), outputs(masked, torch.float64)) <= 1e-6
