"""`pruneboard analyze` and `pruneboard export` against a real `pruneboard up`: the valley
numbers of a finished twin job, and its small model downloaded, checked and loaded."""

from __future__ import annotations

import json

import httpx
import pytest
import torch
from embedded import running_up

from cli.main import main
from pruning import load_compact
from pruning.data import load_dataset

TWIN_JOB = {"model": "mlp", "mlp_widths": [32, 16], "epochs": 3, "lr": 0.5, "c": 0.02,
            "reference": "sgd", "analyses": ["linear"]}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The service with one finished twin job; yields (service, job id, summary)."""
    folder = tmp_path_factory.mktemp("export")
    with running_up(folder, OMP_NUM_THREADS="1") as service:
        config = folder / "job.json"
        config.write_text(json.dumps(TWIN_JOB))
        args = ["--url", service["url"], "--token", service["token"]]
        assert main(["submit", str(config), "--watch", *args]) == 0
        job = httpx.get(f"{service['url']}/api/v1/jobs", headers={
            "Authorization": f"Bearer {service['token']}"}).json()["items"][0]
        assert job["status"] == "succeeded", job["error"]
        yield service, job["id"], job["summary"]


def cli(service, *argv: str) -> int:
    return main([*argv, "--url", service["url"], "--token", service["token"]])


def test_export_downloads_checks_and_loads_the_small_model(finished, tmp_path, capsys):
    service, job_id, summary = finished
    out = tmp_path / "small"
    assert cli(service, "export", str(job_id), "-o", str(out)) == 0
    printed = capsys.readouterr().out
    assert "model.safetensors" in printed and "model.json" in printed and "sha256" in printed
    model = load_compact(out)
    data = load_dataset("digits", seed=0)
    with torch.no_grad():
        correct = (model.eval()(data.test_x).argmax(1) == data.test_y).sum().item()
    assert correct / len(data.test_y) == summary["compact"]["compact_test_accuracy"]
    assert sum(p.numel() for p in model.parameters()) == summary["compact"]["compact_params"]

    assert cli(service, "export", str(job_id), "--format", "torchscript", "-o", str(out)) == 0
    scripted = torch.jit.load(str(out / "model.pt"))
    with torch.no_grad():
        assert torch.equal(scripted(data.test_x[:8]), model(data.test_x[:8]))


def test_a_changed_file_on_the_server_is_refused_and_nothing_is_written(finished, tmp_path,
                                                                        capsys):
    service, job_id, _ = finished
    served = (service["data_dir"] / "artifacts" / "jobs" / str(job_id) / "export"
              / "model.onnx")
    original = served.read_bytes()
    try:
        served.write_bytes(original[:-10])  # truncated on disk
        out = tmp_path / "onnx"
        assert cli(service, "export", str(job_id), "--format", "onnx", "-o", str(out)) == 2
        error = capsys.readouterr().err
        assert "changed on disk since it was exported" in error
        assert not list(out.iterdir())
    finally:
        served.write_bytes(original)
    assert cli(service, "export", str(job_id), "--format", "onnx", "-o", str(out)) == 0
    assert (out / "model.onnx").read_bytes() == original


def test_analyze_prints_the_valley_numbers(finished, capsys):
    service, job_id, _ = finished
    assert cli(service, "analyze", str(job_id), "--kind", "linear", "--kind", "hessian",
               "--hessian-k", "3") == 0
    out = capsys.readouterr().out
    assert "linear path: barrier" in out and "Hessian top-3" in out
    assert cli(service, "analyze", str(job_id), "--points", "1") == 2
    assert "points" in capsys.readouterr().err
    assert cli(service, "export", "99999") == 2
    assert "job 99999 not found" in capsys.readouterr().err
