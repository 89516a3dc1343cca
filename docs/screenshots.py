"""Regenerate the README's numbers and images from real runs on a real `pruneboard up`.

    .venv/bin/python docs/screenshots.py valley    # loss-valley numbers and charts, small model
    .venv/bin/python docs/screenshots.py compare   # every method on digits, the compare page
    .venv/bin/python docs/screenshots.py models    # the Models page with the test architectures

``valley`` submits the digits demo with an SGD twin for mlp and cnn-small (every analysis on),
waits for the jobs and their analyses, prints the headline numbers as JSON and saves element
screenshots of the job page, and the whole mlp job page, to docs/images/. ``compare`` submits
every method on digits (mlp, the settings of bench/compare_methods.py) and saves the compare
page. ``models`` pushes the three architectures of tests/support/own_models.py (and the first
as ONNX), waits for their inspections and saves the Models page and one model's page. All use
Debian's Chromium, as the browser tests do.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
from embedded import running_up  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from compare_methods import CNN_SMALL, job_config  # noqa: E402

IMAGES = ROOT / "docs" / "images"
JOBS = {
    "mlp": {"model": "mlp", "name": "digits mlp with twin"},
    "cnn-small": {"model": "cnn-small", "name": "digits cnn-small with twin", **CNN_SMALL},
}
COMMON = {"dataset": "digits", "method": "sdprun", "reference": "sgd", "valley_interval": 10,
          "analyses": ["linear", "bezier", "hessian", "plane"]}
CHARTS = {"valley-path": "#chart-valley-path", "valley-spectrum": "#chart-valley-spectrum",
          "valley-plane": "#chart-valley-plane", "small-model": "#small-model"}


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise SystemExit(f"timed out waiting for {what}")


@contextmanager
def service_and_browser():
    """(stack, api client, signed-in page) of a fresh `pruneboard up`."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder, running_up(Path(folder)) as stack, \
            sync_playwright() as playwright:
        api = httpx.Client(base_url=f"{stack['url']}/api/v1", timeout=30,
                           headers={"Authorization": f"Bearer {stack['token']}"})
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.request.post(f"{stack['url']}/api/v1/session", data={"token": stack["token"]})
        try:
            yield stack, api, context.new_page()
        finally:
            browser.close()


def finished(api, job_id: int) -> dict:
    return wait(lambda: (lambda job: job if job["status"] in ("succeeded", "failed") else None)(
        api.get(f"/jobs/{job_id}").json()), 3600, f"job {job_id}")


def valley() -> None:
    with service_and_browser() as (stack, api, page):
        ids = {name: api.post("/jobs", json={**COMMON, **job}).json()["id"]
               for name, job in JOBS.items()}
        numbers = {}
        for name, job_id in ids.items():
            job = finished(api, job_id)
            analysis = wait(lambda j=job_id: next((a for a in api.get(f"/jobs/{j}/analyses")
                                                   .json() if a["status"] in
                                                   ("succeeded", "failed")), None),
                            1800, f"the analysis of job {job_id}")
            result, summary = analysis["result"] or {}, job["summary"] or {}
            numbers[name] = {
                "test_accuracy": summary.get("test_accuracy"),
                "twin_test_accuracy": job["latest"].get("reference_test_accuracy"),
                "flops_removed": summary.get("flops_reduction"),
                "linear_barrier": result.get("linear", {}).get("barrier"),
                "bezier_barrier": result.get("bezier", {}).get("barrier"),
                "hessian_fraction": result.get("hessian", {}).get("fraction"),
                "random_fraction_mean": result.get("hessian", {}).get("random_mean"),
                "random_expected": result.get("hessian", {}).get("random_expected"),
                "analysis_seconds": result.get("elapsed_s"),
                "compact": {k: summary.get("compact", {}).get(k) for k in
                            ("compact_params", "dense_params", "latency")},
                "status": [job["status"], analysis["status"], analysis["error"]],
            }
        print(json.dumps(numbers, indent=2))
        for name, job_id in ids.items():
            page.goto(f"{stack['url']}/#/jobs/{job_id}")
            for selector in CHARTS.values():
                page.wait_for_selector(f"{selector} .main-svg" if selector != "#small-model"
                                       else "#artifacts li", timeout=30_000)
            page.wait_for_timeout(1000)
            for image, selector in CHARTS.items():
                page.locator(selector).screenshot(path=IMAGES / f"{image}-{name}.png")
            if name == "mlp":  # the README's picture of a whole job page
                page.screenshot(path=IMAGES / "job-page.png", full_page=True)


def compare() -> None:
    from pruneboard.spec import METHODS

    with service_and_browser() as (stack, api, page):
        ids = []
        for method in METHODS:
            body = {k: v for k, v in job_config("mlp", method).items() if k != "device"}
            ids.append(api.post("/jobs", json={**body, "name": method}).json()["id"])
        rows = []
        for job_id in ids:
            job = finished(api, job_id)
            summary = job["summary"] or {}
            rows.append((job["name"], job["status"], summary.get("test_accuracy"),
                         summary.get("flops_reduction")))
        print(json.dumps(rows, indent=1))
        page.goto(f"{stack['url']}/#/compare?ids={','.join(map(str, ids))}&key=test_accuracy")
        page.wait_for_selector("#chart-pareto .main-svg", timeout=60_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=IMAGES / "compare-methods.png", full_page=True)


def models() -> None:
    import io

    import torch
    from own_models import INPUT_SHAPE, MODELS, make
    from safetensors.torch import save as save_safetensors

    from pruning.compact.graphjson import describe

    shape = ",".join(map(str, INPUT_SHAPE))
    with service_and_browser() as (stack, api, page):
        for name in MODELS:
            net = make(name)
            state = {k: v.contiguous() for k, v in net.state_dict().items()}
            files = {"graph": ("g.json", json.dumps(describe(net)).encode()),
                     "weights": ("w.safetensors", save_safetensors(state))}
            api.post("/models", files=files, data={"name": name, "input_shape": shape})
        buffer = io.BytesIO()
        torch.onnx.export(make("mobilenetish").eval(), (torch.randn(2, *INPUT_SHAPE),), buffer,
                          dynamo=False, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
        api.post("/models", files={"onnx": ("m.onnx", buffer.getvalue())},
                 data={"name": "mobilenetish-onnx"})
        wait(lambda: all(m["latest"]["status"] in ("ready", "failed")
                         for m in api.get("/models").json()["models"]), 300, "inspections")
        print(json.dumps({m["name"]: (m["latest"]["status"], (m["latest"]["inspection"] or {})
                                      .get("prunable_param_share"))
                          for m in api.get("/models").json()["models"]}, indent=1))
        page.goto(f"{stack['url']}/#/models")
        page.wait_for_selector("text=ready", timeout=60_000)
        page.screenshot(path=IMAGES / "models.png", full_page=True)
        page.goto(f"{stack['url']}/#/models/tinyvit")
        page.wait_for_selector("text=tinyvit", timeout=60_000)
        page.wait_for_timeout(1000)
        page.screenshot(path=IMAGES / "model-detail.png", full_page=True)


if __name__ == "__main__":
    commands = {"valley": valley, "compare": compare, "models": models}
    commands[sys.argv[1] if len(sys.argv) > 1 else "valley"]()
