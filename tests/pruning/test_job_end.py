"""The end of a run: the compact network measured, and exported when asked."""

import torch

from pruning import TrainConfig, load_compact, train
from pruning.data import load_dataset

RUN = dict(model="mlp", dataset="digits", mlp_widths=(32, 16), epochs=3, batch_size=64,
           log_interval=5, lr=0.5, c=0.02)


def test_a_run_ends_with_its_compact_network_measured_and_exported(tmp_path):
    events = []
    summary = train(TrainConfig(**RUN, export_dir=str(tmp_path)), events.append)
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "end" and kinds.count("compact") == 1
    compact = next(e for e in events if e["type"] == "compact")
    assert summary["compact"]["compact_params"] == compact["compact_params"]
    assert compact["compact_params"] < compact["dense_params"]
    # Compaction removed only units that emit zero: same accuracy as the pruned run.
    assert compact["compact_test_accuracy"] == summary["test_accuracy"]
    assert {row["batch_size"] for row in compact["latency"]} == {1, 64}

    artifacts = {e["path"]: e for e in events if e["type"] == "artifact"}
    assert {"model.safetensors", "model.json", "model.pt"} <= set(artifacts)
    model = load_compact(tmp_path)
    data = load_dataset("digits", seed=0)
    with torch.no_grad():
        correct = (model(data.test_x).argmax(1) == data.test_y).sum().item()
    assert correct / len(data.test_y) == summary["test_accuracy"]


def test_compact_off_skips_the_end_of_run_work(tmp_path):
    events = []
    summary = train(TrainConfig(**RUN, compact=False, export_dir=str(tmp_path)), events.append)
    assert not [e for e in events if e["type"] in ("compact", "artifact")]
    assert "compact" not in summary and not list(tmp_path.iterdir())


def test_a_failing_export_leaves_the_run_succeeded_with_the_reason(tmp_path, monkeypatch):
    from pruning.compact import job_end

    def broken_export(*args, **kwargs):
        raise RuntimeError("the exporter refused an operation")

    monkeypatch.setattr(job_end, "export_compact", broken_export)
    events = []
    summary = train(TrainConfig(**RUN, export_dir=str(tmp_path)), events.append)
    assert events[-1]["type"] == "end" and summary["test_accuracy"] > 0
    assert "compact" in summary  # measured before the export failed
    error = next(e for e in events if e["type"] == "compact_error")
    assert "the exporter refused an operation" in error["message"]
    assert summary["compact_error"] == error["message"]
