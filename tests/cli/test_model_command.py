"""`pruneboard model push | list | show | delete` against a real `pruneboard up` (API, local
worker, SQLite): a Python model traced here and inspected there, ONNX files, and every refusal as
one line with exit 2 and nothing stored."""

from __future__ import annotations

import io
import warnings

import httpx
import pytest
import torch
from embedded import running_up
from own_models import INPUT_SHAPE, NUM_CLASSES, MobileNetish
from safetensors.torch import save_file

from cli.main import main

SHAPE = ",".join(map(str, INPUT_SHAPE))
USER_FILE = """\
import torch
from torch import nn
from own_models import DenseNetish, MobileNetish


def mobile(width=8):
    return MobileNetish(width=width)


class Dense(DenseNetish):
    pass


class Sorting(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 16 * 16, 10)

    def forward(self, x):
        return self.fc(torch.sort(x.flatten(1), dim=1).values)


class Clamp(nn.Module):
    def forward(self, x):
        return x.clamp(min=0)


class Clamped(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.act, self.fc = nn.Conv2d(3, 4, 3), Clamp(), nn.Linear(4 * 14 * 14, 10)

    def forward(self, x):
        return self.fc(self.act(self.conv(x)).flatten(1))
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with running_up(tmp_path_factory.mktemp("up"), OMP_NUM_THREADS="1") as stack:
        from backend.auth import create_token
        from backend.db import session_scope

        with session_scope(stack["db_url"]) as session:
            stack["bob"] = create_token(session, name="bob", scope="submit")
        yield stack


@pytest.fixture(scope="module")
def user_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("user") / "nets.py"
    path.write_text(USER_FILE)
    return path


def pruneboard(capsys, service, *args, token=None):
    code = main(["model", *args, "--url", service["url"], "--token", token or service["token"]])
    out, err = capsys.readouterr()
    return code, out, err


def api(service, path):
    return httpx.get(f"{service['url']}/api/v1{path}",
                     headers={"Authorization": f"Bearer {service['token']}"})


def refused(code, err, *words):
    assert code == 2, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("pruneboard: error: ") and "Traceback" not in err, err
    for word in words:
        assert word in line, line


def onnx_bytes(model, shape=INPUT_SHAPE) -> bytes:
    model.eval()
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter warns that it is legacy
        torch.onnx.export(model, (torch.randn(2, *shape),), buffer, dynamo=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return buffer.getvalue()


def test_a_python_model_with_weights_becomes_ready_then_a_second_version(
        service, user_file, capsys, tmp_path):
    torch.manual_seed(1)
    trained = MobileNetish()
    for module in trained.modules():  # "trained" statistics, so the weights are not the init's
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
    save_file(trained.state_dict(), tmp_path / "mobile.safetensors")

    code, out, err = pruneboard(capsys, service, "push", f"{user_file}:mobile", "--name",
                                "mobile", "--input-shape", SHAPE, "--weights",
                                str(tmp_path / "mobile.safetensors"))
    assert code == 0, err
    params = sum(p.numel() for p in trained.parameters())
    assert "mobile version 1 (graph): ready" in out and f"parameters | {params:,}" in out
    assert "weights    | pushed" in out and "dense      | classifier" in out
    version = api(service, "/models/mobile").json()["versions"][0]
    assert version["has_weights"] and version["inspection"]["num_classes"] == NUM_CLASSES
    assert {f["kind"] for f in version["files"]} == {"graph", "weights"}

    code, out, err = pruneboard(capsys, service, "push", f"{user_file}:mobile", "--name",
                                "mobile", "--input-shape", SHAPE, "--factory-kwargs",
                                '{"width": 4}', "--no-wait")
    assert (code, out) == (0, "2\n"), err
    assert "no weights sent" in err

    code, out, err = pruneboard(capsys, service, "list")
    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert header.split() == ["name", "owner", "versions", "latest", "params", "FLOPs"]
    assert row.split()[:4] == ["mobile", "admin", "2", "v2"]

    code, out, err = pruneboard(capsys, service, "show", "mobile", "--version", "1")
    assert code == 0, err
    assert out.startswith("mobile".join(("model ", ", owner admin, 2 versions")))
    assert "mobile version 1 (graph): ready" in out and "classifier (Linear, 330 params)" in out


@pytest.mark.parametrize("factory, named", [("Sorting", "function sort"),
                                            ("Clamped", "method .clamp()")])
def test_a_model_outside_the_whitelist_is_refused_before_any_upload(
        service, user_file, capsys, factory, named):
    code, _, err = pruneboard(capsys, service, "push", f"{user_file}:{factory}", "--name",
                              "outside", "--input-shape", SHAPE)
    refused(code, err, named, "not in the whitelist")
    assert api(service, "/models/outside").status_code == 404


def test_weights_that_do_not_fit_are_refused_naming_the_keys(
        service, user_file, capsys, tmp_path):
    state = MobileNetish().state_dict()
    del state["classifier.bias"]
    state["extra.weight"] = torch.zeros(3)
    save_file(state, tmp_path / "wrong.safetensors")
    code, _, err = pruneboard(capsys, service, "push", f"{user_file}:mobile", "--name",
                              "wrong", "--input-shape", SHAPE, "--weights",
                              str(tmp_path / "wrong.safetensors"))
    refused(code, err, "--weights", "missing: classifier.bias", "unexpected: extra.weight")
    assert api(service, "/models/wrong").status_code == 404


def test_names_the_service_refuses(service, user_file, capsys):
    code, _, err = pruneboard(capsys, service, "push", f"{user_file}:Dense", "--name", "mlp",
                              "--input-shape", SHAPE)
    refused(code, err, "name:", "built-in")

    code, _, err = pruneboard(capsys, service, "push", f"{user_file}:Dense", "--name", "taken",
                              "--input-shape", SHAPE, "--no-wait")
    assert code == 0, err
    code, _, err = pruneboard(capsys, service, "push", f"{user_file}:Dense", "--name", "taken",
                              "--input-shape", SHAPE, token=service["bob"])
    refused(code, err, "name:", "already belongs to admin")
    assert len(api(service, "/models/taken").json()["versions"]) == 1

    code, _, err = pruneboard(capsys, service, "show", "No/Such")
    refused(code, err, "NAME", "not a model name")


def test_an_onnx_file_is_inspected_and_can_be_deleted(service, capsys, tmp_path):
    path = tmp_path / "mobile.onnx"
    path.write_bytes(onnx_bytes(MobileNetish()))
    code, out, err = pruneboard(capsys, service, "push", str(path), "--name", "onnxnet")
    assert code == 0, err
    assert "onnxnet version 1 (onnx): ready" in out and f"input      | {SHAPE.replace(',', 'x')}" \
        in out

    # The worker's check of the declared classes fails the version: exit 1, with its reason.
    code, out, err = pruneboard(capsys, service, "push", str(path), "--name", "onnxnet",
                                "--num-classes", "7")
    assert code == 1 and out == "", err
    assert "onnxnet version 2 failed:" in err and "7 classes" in err

    code, out, err = pruneboard(capsys, service, "delete", "onnxnet")
    assert code == 0 and "deleted" in out, err
    assert api(service, "/models/onnxnet").status_code == 404


def test_an_onnx_file_with_an_unsupported_operator_is_refused_at_upload(
        service, capsys, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Abs", ["input"], ["hidden"]),
         helper.make_node("Flatten", ["hidden"], ["logits"])], "absolute",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, *INPUT_SHAPE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 768])])
    path = tmp_path / "abs.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]),
                    str(path))
    code, _, err = pruneboard(capsys, service, "push", str(path), "--name", "absolute")
    refused(code, err, "onnx:", "Abs")
    assert api(service, "/models/absolute").status_code == 404


def test_a_job_can_name_a_pushed_model(service, user_file, capsys, tmp_path):
    code, _, err = pruneboard(capsys, service, "push", f"{user_file}:Dense", "--name",
                              "forjob", "--input-shape", SHAPE, "--with-weights")
    assert code == 0, err
    job = tmp_path / "job.yaml"
    job.write_text(f"model: forjob\ndataset: synthetic\nsynthetic_shape: [{SHAPE}]\n"
                   f"synthetic_classes: {NUM_CLASSES}\nsynthetic_size: 64\nepochs: 1\n")
    code = main(["submit", str(job), "--url", service["url"], "--token", service["token"]])
    out, err = capsys.readouterr()
    assert code == 0, err
    headers = {"Authorization": f"Bearer {service['token']}"}
    accepted = httpx.get(f"{service['url']}/api/v1/jobs/{out.strip()}", headers=headers).json()
    assert accepted["model"] == "forjob" and accepted["config"]["model_version"] == 1
    httpx.post(f"{service['url']}/api/v1/jobs/{out.strip()}/cancel", headers=headers)
