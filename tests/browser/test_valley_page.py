"""The job page of a run with an SGD twin: the live valley check, the small model with its
downloads, and the loss-valley analysis charts; an analysis started from the page."""

from __future__ import annotations

import hashlib

TWIN_JOB = {"model": "mlp", "mlp_widths": [32, 16], "epochs": 4, "log_interval": 5, "lr": 0.5,
            "c": 0.02, "reference": "sgd", "valley_interval": 1,
            "analyses": ["linear", "bezier", "hessian", "plane"], "name": "browser valley"}
DRAWN = "(sel) => { const p = document.querySelector(sel + ' .chart-plot'); " \
        "return Boolean(p && !p.hidden && p.querySelector('.main-svg')); }"


def finished_analyses(api, job_id):
    return [a for a in api.get(f"/jobs/{job_id}/analyses").json()
            if a["status"] in ("succeeded", "failed")]


def test_the_valley_charts_and_the_small_model_of_a_twin_job(signed_in, stack, api, wait_until,
                                                             shot, browser):
    job_id = api.post("/jobs", json=TWIN_JOB).json()["id"]
    wait_until(lambda: api.get(f"/jobs/{job_id}").json()["status"] in ("succeeded", "failed"),
               timeout=240, what="the twin job")
    wait_until(lambda: finished_analyses(api, job_id), timeout=240, what="its analysis")
    [analysis] = api.get(f"/jobs/{job_id}/analyses").json()
    assert analysis["status"] == "succeeded", analysis["error"]

    page = signed_in
    page.goto(f"{stack['url']}/#/jobs/{job_id}")
    for chart in ("#chart-valley-live", "#chart-valley-barrier", "#chart-valley-path",
                  "#chart-valley-spectrum", "#chart-valley-plane", "#chart-valley-plane-error"):
        page.wait_for_function(DRAWN, arg=chart, timeout=15_000)
    spectrum_title = page.inner_text("#chart-valley-spectrum .chart-title")
    assert f"{analysis['result']['hessian']['fraction']:.4f}" in spectrum_title
    # The path chart has the linear and the Bézier curves, 41 and 21 points.
    sizes = page.evaluate("""() => document.querySelector('#chart-valley-path .chart-plot').data
        .filter((t) => t.name.endsWith('train loss')).map((t) => t.x.length)""")
    assert sizes == [41, 21]
    assert "SGD twin" in page.inner_text("#analysis-table")

    report = page.inner_text("#compact-report")
    assert "latency, cpu batch 64" in report and "equal" in report
    link = page.locator("#artifacts a", has_text="model.safetensors")
    response = page.request.get(stack["url"] + link.get_attribute("href"))
    listed = {a["name"]: a for a in api.get(f"/jobs/{job_id}/artifacts").json()}
    assert hashlib.sha256(response.body()).hexdigest() == listed["model.safetensors"]["sha256"]
    assert listed["model.safetensors"]["sha256"] in page.inner_text("#artifacts")
    shot(page, "job-valley")
    # A viewer sees the files and their SHA-256 but no download link: downloads are the
    # owner's or an admin's (the API refuses them too).
    viewer = browser.new_context()
    try:
        token = api.post("/tokens", json={"name": "valley-viewer", "scope": "read"}).json()
        other = viewer.new_page()
        other.goto(f"{stack['url']}/#/signin")
        other.fill("#token", token["token"])
        other.click("#signin-form button[type=submit]")
        other.locator("#jobs-table").wait_for()
        other.goto(f"{stack['url']}/#/jobs/{job_id}")
        other.locator("#download-note").wait_for()
        assert other.locator("#artifacts a").count() == 0
        assert listed["model.safetensors"]["sha256"] in other.inner_text("#artifacts")
    finally:
        viewer.close()
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(500)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, \
        "the job page scrolls sideways on a phone"
    page.set_viewport_size({"width": 1280, "height": 900})

    # Another analysis from the page: a bad reference is refused at once, a good run appears.
    page.fill("#analysis-reference", "999999")
    page.click("#run-analysis")
    page.locator("#valley .notice.error").wait_for()
    assert "reference_job_id" in page.inner_text("#valley .notice.error")
    page.fill("#analysis-reference", "")
    for kind in ("bezier", "hessian", "plane"):
        page.uncheck(f"#analysis-form input[value={kind}]")
    page.click("#run-analysis")
    page.wait_for_function("""() => [...document.querySelectorAll('#analysis-table tbody tr')]
        .filter((r) => r.dataset.status === 'succeeded').length === 2""", timeout=120_000)
    newest = api.get(f"/jobs/{job_id}/analyses").json()[-1]
    assert newest["options"]["kinds"] == ["linear"] and "hessian" not in newest["result"]
