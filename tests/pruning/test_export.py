"""export_compact / load_compact: identical outputs after a round trip; damaged files refused."""

from __future__ import annotations

import hashlib
import json
import pickle

import pytest
import torch
from torch import nn

import pruning
from pruning.compact import ExportError, compact, export_compact, load_compact
from pruning.compact.archive import _canonical, _sha256_of
from pruning.groups import build_groups
from pruning.models import build_model

SHAPES = {"mlp": (1, 8, 8), "cnn-small": (1, 8, 8), "vgg16-bn": (3, 32, 32),
          "resnet20": (3, 8, 8), "resnet56": (3, 8, 8), "wrn-28-10": (3, 8, 8)}


pytestmark = pytest.mark.usefixtures("one_thread")


def compact_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(name, input_shape=SHAPES[name], num_classes=10)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(1)
        for group in build_groups(model).groups:
            units = torch.randperm(group.num_units, generator=generator)[:group.num_units // 2]
            for _, param in group.params:
                param[units] = 0
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return compact(model, input_shape=SHAPES[name])


def batch(name: str, size: int = 3) -> torch.Tensor:
    return torch.randn(size, *SHAPES[name], generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def resnet_export(tmp_path_factory):
    model = compact_model("resnet20")
    directory = tmp_path_factory.mktemp("export")
    entries = export_compact(model, directory, input_shape=SHAPES["resnet20"])
    return model, directory, entries


@pytest.mark.parametrize("name", list(SHAPES))
def test_safetensors_round_trip_gives_identical_outputs(name, tmp_path):
    model = compact_model(name)
    entries = export_compact(model, tmp_path, input_shape=SHAPES[name], formats=("safetensors",))
    assert [e["path"] for e in entries] == ["model.safetensors", "model.json"]
    loaded = load_compact(tmp_path)
    assert isinstance(loaded, torch.fx.GraphModule) and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(batch(name)), model(batch(name)))
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel()
                                                              for p in model.parameters())


def test_every_file_is_listed_with_its_digest(resnet_export):
    _, directory, entries = resnet_export
    formats = [e["format"] for e in entries]
    assert formats[:3] == ["safetensors", "json", "torchscript"]
    for entry in entries:
        data = (directory / entry["path"]).read_bytes()
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert load_compact(directory / "model.json") is not None
    assert pruning.load_compact is load_compact


def test_torchscript_round_trip_gives_identical_outputs(resnet_export):
    model, directory, _ = resnet_export
    scripted = torch.jit.load(str(directory / "model.pt"))
    with torch.no_grad():
        assert torch.equal(scripted(batch("resnet20", 5)), model(batch("resnet20", 5)))


def test_onnx_runs_in_onnxruntime_with_any_batch(resnet_export):
    ort = pytest.importorskip("onnxruntime")
    model, directory, entries = resnet_export
    assert "onnx" in [e["format"] for e in entries]
    session = ort.InferenceSession(str(directory / "model.onnx"))
    x = batch("resnet20", 5)  # exported with a batch of 2
    (logits,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), model(x), rtol=1e-4, atol=1e-5)


def test_loading_unpickles_nothing(resnet_export, monkeypatch):
    model, directory, _ = resnet_export

    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded = load_compact(directory)
    with torch.no_grad():
        assert torch.equal(loaded(batch("resnet20")), model(batch("resnet20")))


@pytest.fixture
def archive(tmp_path):
    model = compact_model("cnn-small")
    export_compact(model, tmp_path, input_shape=SHAPES["cnn-small"], formats=("safetensors",))
    return tmp_path


@pytest.mark.parametrize("file", ["model.safetensors", "model.json"])
@pytest.mark.parametrize("where", [0.0, 0.01, 0.3, 0.7, 0.999])
def test_one_flipped_byte_is_refused(archive, file, where):
    path = archive / file
    data = bytearray(path.read_bytes())
    data[int(where * (len(data) - 1))] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ExportError, match=file.replace(".", r"\.")):
        load_compact(archive)


@pytest.mark.parametrize("file", ["model.safetensors", "model.json"])
@pytest.mark.parametrize("keep", [0, 0.5, 0.99])
def test_a_truncated_file_is_refused(archive, file, keep):
    path = archive / file
    data = path.read_bytes()
    path.write_bytes(data[:int(keep * len(data))])
    with pytest.raises(ExportError, match=file.replace(".", r"\.")):
        load_compact(archive)


@pytest.mark.parametrize("file", ["model.safetensors", "model.json"])
def test_a_missing_file_is_refused(archive, file):
    (archive / file).unlink()
    with pytest.raises(ExportError, match="no such file"):
        load_compact(archive)


def forge(archive, edit) -> None:
    """Rewrite model.json with a consistent digest, as a forger would."""
    path = archive / "model.json"
    document = json.loads(path.read_text())
    document.pop("json_sha256")
    edit(document)
    document["json_sha256"] = _sha256_of(document)
    path.write_bytes(_canonical(document))


def test_a_forged_layer_type_is_refused(archive):
    def edit(document):
        document["architecture"]["modules"]["features.0"]["type"] = "os.system"
    forge(archive, edit)
    with pytest.raises(ExportError, match="not in the whitelist"):
        load_compact(archive)


def test_a_forged_function_is_refused(archive):
    def edit(document):
        node = next(n for n in document["architecture"]["graph"] if n["op"] == "call_module")
        node["op"], node["target"] = "call_function", "builtins.eval"
    forge(archive, edit)
    with pytest.raises(ExportError, match="builtins.eval.*not in the whitelist"):
        load_compact(archive)


def test_a_name_that_would_be_code_is_refused(archive, capsys):
    # torch.fx writes node and layer names into the source of forward(): a forged name must
    # never reach it.
    def edit(document):
        node = next(n for n in document["architecture"]["graph"] if n["op"] == "placeholder")
        node["target"] = "x=print('forged code ran')"
    forge(archive, edit)
    with pytest.raises(ExportError, match="not a plain name"):
        load_compact(archive)
    assert "forged code ran" not in capsys.readouterr().out


def test_a_forged_shape_is_refused(archive):
    def edit(document):
        document["architecture"]["modules"]["classifier"]["args"]["out_features"] = 11
    forge(archive, edit)
    with pytest.raises(ExportError, match="classifier.weight"):
        load_compact(archive)


class Squash(nn.Module):
    def forward(self, x):
        return torch.exp(x)  # not in the whitelist (torch.sigmoid is)


def test_export_refuses_what_it_cannot_describe(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2), Squash())
    with pytest.raises(ExportError, match="not in the whitelist"):
        export_compact(model, tmp_path, input_shape=(4,), formats=("safetensors",))
    with pytest.raises(ExportError, match="unknown export format"):
        export_compact(model, tmp_path, input_shape=(4,), formats=("pickle",))
