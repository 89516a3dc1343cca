"""The Models page as a person uses it, in Chromium against the real stack: push a network of
one's own through the page's file inputs (a graph JSON from the engine's own ``describe`` and
safetensors weights, written here), see the worker's inspection make it ready with its layers,
params, FLOPs and prunable share, submit a job on it from the New job form, watch it run with
the unpruned model's accuracy as the reference line, and delete the model.

The tests share one stack and run in file order (later ones use the model earlier ones push).
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from pruning.compact.graphjson import describe
from pruning.data import load_dataset

INPUT_SHAPE, CLASSES, SAMPLES = (3, 8, 8), 10, 256
# 3 epochs of 8 steps on 256 synthetic samples: seconds on a 2-core CPU, long enough to be seen.
JOB = {"epochs": "3", "synthetic_size": str(SAMPLES), "batch_size": "32", "log_interval": "2",
       "bn_samples": str(SAMPLES)}
FINISHED = ("succeeded", "failed", "cancelled")
pushed: dict[str, str] = {}


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, CLASSES))


def trained(net: nn.Module) -> nn.Module:
    """Trained on the job's own synthetic data (the same seed), as a user brings a trained
    model: its accuracy, measured by the job before it prunes, is the chart's reference line."""
    data = load_dataset("synthetic", seed=0, synthetic_shape=INPUT_SHAPE,
                        synthetic_classes=CLASSES, synthetic_size=SAMPLES)
    x, y = data.train_x, data.train_y
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(60):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    return net.eval()


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("own-model")
    net = trained(small_net())
    graph, weights = folder / "net.json", folder / "net.safetensors"
    graph.write_text(json.dumps(describe(net)))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    return {"graph": str(graph), "weights": str(weights)}


def open_models(page, stack):
    page.goto(f"{stack['url']}/#/models")
    page.locator("#model-form").wait_for()


def push(page, name: str, shape: str, files: dict[str, str]) -> None:
    page.fill("#model-field-name", name)
    page.fill("#model-field-input_shape", shape)
    for kind, path in files.items():
        page.set_input_files(f"#model-field-{kind}", path)
    page.click("#push-model")


def test_a_refused_upload_is_explained_at_its_field(signed_in, stack, model_files):
    page = signed_in
    open_models(page, stack)
    push(page, "browser-net", "3,8", model_files)
    error = page.locator("#model-error-input_shape")
    error.wait_for()
    assert error.inner_text(), "the input_shape refusal says why"
    assert page.get_attribute("#model-field-input_shape", "aria-invalid") == "true"

    # A built-in's name: refused at name, with the API's reason; nothing is stored.
    push(page, "mlp", "3,8,8", model_files)
    page.locator("#model-error-name").wait_for()
    assert "built-in" in page.inner_text("#model-error-name")
    assert page.locator("#model-error-input_shape").is_hidden()
    # No file at all: the API asks for the graph.
    page.set_input_files("#model-field-graph", [])
    page.set_input_files("#model-field-weights", [])
    push(page, "browser-net", "3,8,8", {})
    page.locator("#model-error-graph").wait_for()
    assert "graph" in page.inner_text("#model-error-graph")


def test_push_a_model_and_see_it_become_ready(signed_in, stack, api, model_files, shot):
    page = signed_in
    name = f"browser-net-{uuid.uuid4().hex[:6]}"
    pushed["name"] = name
    open_models(page, stack)
    push(page, name, ",".join(map(str, INPUT_SHAPE)), model_files)
    row = page.locator(f'#models-table tr[data-model="{name}"]')
    row.wait_for()
    # The page polls while the worker inspects it: queued/running, then ready.
    row.locator('.badge[data-status="ready"]').wait_for(timeout=90_000)
    page.locator('#push-status [data-status="ready"]').wait_for()
    assert f"{name} version 1: ready" in page.inner_text("#push-status")
    version = api.get(f"/models/{name}").json()["versions"][0]
    assert version["status"] == "ready", version["error"]
    facts = version["inspection"]
    assert "admin" in row.inner_text() and "3×8×8" in row.inner_text()
    shot(page, "models")

    row.locator("a").click()
    page.locator("#model-version-1[data-status=ready]").wait_for()
    assert page.inner_text("#model-title") == name
    assert f"{facts['params']:,}" == page.get_attribute("#model-params", "title")
    assert f"{facts['flops']:,}" == page.get_attribute("#model-flops", "title")
    assert f"{100 * facts['prunable_param_share']:.1f} %" in page.inner_text("#model-prunable")
    assert page.locator("#model-layers tbody tr").count() == len(facts["layers"])
    assert "owner admin" in page.inner_text("#model-meta")
    assert version["files"][0]["sha256"] in page.inner_text("#model-version-1")
    shot(page, "model-detail")


def test_submit_a_job_on_it_and_watch_it_run(signed_in, stack, api, shot):
    page = signed_in
    name = pushed["name"]
    overlay = next(p for p in api.get("/config-spec").json()["presets"] if p.get("overlay"))
    page.goto(f"{stack['url']}/#/models/{name}")
    page.click("#new-job-with-model")
    page.locator("#job-form").wait_for()
    assert page.input_value("#field-model") == name
    label = page.inner_text(f'#field-model option[value="{name}"]')
    assert "3×8×8" in label, label
    assert page.locator("#note-model").is_visible() and "3×8×8" in page.inner_text("#note-model")
    # model_version and init belong to pushed models only.
    version_field = page.locator('.field[data-field="model_version"]')
    assert version_field.is_visible() and page.locator('.field[data-field="init"]').is_visible()
    page.select_option("#field-model", "mlp")
    assert version_field.is_hidden() and page.locator("#note-model").is_hidden()
    # A fine-tuning preset needs a pushed model with weights, and says so.
    page.click(f"#preset-{overlay['id']}")
    assert "pushed model with trained weights" in page.inner_text("#form-error")
    page.select_option("#field-model", name)
    assert version_field.is_visible()
    # c and mu follow the model like a built-in's: a pushed one gets the spec's own default.
    schema = api.get("/config-spec").json()["schema"]["properties"]
    for field in ("c", "mu"):
        assert float(page.input_value(f"#field-{field}")) == schema[field][
            "x-custom-model-default"], field

    page.select_option("#field-dataset", "synthetic")
    assert page.input_value("#field-synthetic_shape") == "3, 8, 8"  # follows the model
    assert page.input_value("#field-synthetic_classes") == str(CLASSES)
    # It sets its own fields on top of the model and data chosen.
    page.click(f"#preset-{overlay['id']}")
    assert page.input_value("#field-model") == name
    assert page.input_value("#field-dataset") == "synthetic"
    for field, value in overlay["values"].items():
        if isinstance(value, (str, int, float)) and page.locator(f"#field-{field}").is_enabled():
            assert page.input_value(f"#field-{field}") == str(value), field
    page.select_option("#field-reference", "none")  # no SGD twin: one run, seconds
    page.fill("#field-name", "browser own model")
    shot(page, "new-job-own-model", phone=False)
    for field, value in JOB.items():
        page.fill(f"#field-{field}", value)
    page.click("#submit-job")
    page.wait_for_url(re.compile(r".*#/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    config = api.get(f"/jobs/{job_id}").json()["config"]
    assert (config["model"], config["model_version"], config["init"]) == (name, 1, "pretrained")

    statuses = []
    while not statuses or statuses[-1] not in FINISHED:
        statuses.append(page.get_attribute(".job-head .badge", "data-status"))
        page.wait_for_timeout(200)
        assert len(statuses) < 600, (f"job {job_id} did not finish on the page within ~2 min: "
                                     f"{statuses[-3:]}; the API: {api.get(f'/jobs/{job_id}').text}")
    assert statuses[-1] == "succeeded", api.get(f"/jobs/{job_id}").json()["error"]
    assert "running" in statuses or "queued" in statuses

    reference = api.get(f"/jobs/{job_id}/metrics", params={
        "keys": "pretrained_test_accuracy", "max_points": 0}).json()["series"]
    measured = reference["pretrained_test_accuracy"]
    assert measured["steps"] == [0]
    traces = page.wait_for_function("""() => {
        const plot = document.querySelector('#chart-accuracy .chart-plot');
        const data = plot && plot.data ? plot.data : [];
        return data.some((t) => t.meta === 'test_accuracy' && t.x.length)
          && data.some((t) => t.meta === 'pretrained_test_accuracy') && data.map((t) =>
          ({meta: t.meta, x: Array.from(t.x), y: Array.from(t.y), dash: t.line && t.line.dash}));
    }""", timeout=15_000).json_value()
    line = next(t for t in traces if t["meta"] == "pretrained_test_accuracy")
    accuracy = next(t for t in traces if t["meta"] == "test_accuracy")
    assert line["dash"] == "dash"
    assert line["y"] == [measured["values"][0]] * 2
    assert line["x"][0] <= 0 and line["x"][1] >= accuracy["x"][-1]
    shot(page, "job-own-model", phone=False)


def test_its_owner_deletes_it(signed_in, stack, api):
    page = signed_in
    name = pushed["name"]
    page.goto(f"{stack['url']}/#/models/{name}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-model")
    page.wait_for_url("**/#/models")
    page.locator("#models-list").wait_for()
    assert page.locator(f'#models-table tr[data-model="{name}"]').count() == 0
    assert api.get(f"/models/{name}").status_code == 404
