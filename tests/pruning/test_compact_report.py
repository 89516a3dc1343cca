"""compact_report and measure_latency: the numbers a job reports after compaction."""

from __future__ import annotations

import json

import pytest
import torch

from pruning.compact import compact_report, measure_latency
from pruning.data import load_dataset
from pruning.groups import build_groups
from pruning.models import build_model


@pytest.fixture(scope="module")
def pruned_mlp():
    data = load_dataset("synthetic", synthetic_shape=(1, 8, 8), synthetic_size=256, seed=0)
    torch.manual_seed(0)
    model = build_model("mlp", input_shape=data.input_shape, num_classes=data.num_classes)
    structure = build_groups(model)
    with torch.no_grad():
        for group in structure.groups:
            for _, param in group.params:
                param[::2] = 0  # every other unit of each hidden layer: 3/4 of the FLOPs go
    return model, structure, data


def test_report_compares_dense_and_compact(pruned_mlp):
    model, structure, data = pruned_mlp
    report = compact_report(model, structure, data, device="cpu", input_shape=data.input_shape,
                            batch_sizes=(1, 8), repeats=2, warmup=1)
    json.dumps(report)  # JSON-ready as it is
    assert report["dense_params"] == 64 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    assert report["compact_params"] == 64 * 150 + 150 + 150 * 50 + 50 + 50 * 10 + 10
    # Multiply-adds: 64·300 + 300·100 + 100·10 dense, 64·150 + 150·50 + 50·10 compact.
    assert report["dense_flops"] == 2 * (64 * 300 + 300 * 100 + 100 * 10)
    assert report["compact_flops"] == 2 * (64 * 150 + 150 * 50 + 50 * 10)
    assert report["compact_test_accuracy"] == report["pruned_test_accuracy"]
    assert report["accuracy_equal"] is True
    rows = [(r["device"], r["batch_size"]) for r in report["latency"]]
    expected = [("cpu", 1), ("cpu", 8)]
    if torch.cuda.is_available():
        expected += [("cuda", 1), ("cuda", 8)]
    assert rows == expected
    for row in report["latency"]:
        assert row["dense_ms"] > 0 and row["compact_ms"] > 0
        assert row["speedup"] == pytest.approx(row["dense_ms"] / row["compact_ms"])


def test_report_chooses_its_own_repeats(pruned_mlp):
    model, structure, data = pruned_mlp
    report = compact_report(model, structure, data, device="cpu", input_shape=data.input_shape,
                            batch_sizes=(4,))
    assert [r["batch_size"] for r in report["latency"]][:1] == [4]


def test_measure_latency_is_a_median_in_milliseconds(pruned_mlp):
    model, _, _ = pruned_mlp
    model.train()
    ms = measure_latency(model, (1, 8, 8), batch_size=4, device="cpu", warmup=1, repeats=3)
    assert 0 < ms < 1000
    assert model.training  # left as it was
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(model, (1, 8, 8), batch_size=4, device="cpu", repeats=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_measure_latency_on_cuda(pruned_mlp):
    model, _, _ = pruned_mlp
    ms = measure_latency(model.to("cuda"), (1, 8, 8), batch_size=64, device="cuda", repeats=3)
    model.to("cpu")
    assert ms > 0
