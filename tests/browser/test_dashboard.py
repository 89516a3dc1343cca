"""The dashboard as a person uses it, against the real stack (`pruneboard up`) in Chromium:
sign in, submit a digits job through the form, watch its charts grow, compare, cancel.

The tests share one stack and run in file order (later ones use the jobs earlier ones made).
"""

from __future__ import annotations

import json
import re

import pytest

# Small enough to run in seconds on a 2-core CPU, long enough (2,200 steps) to be seen running.
DIGITS_EPOCHS, LOG_INTERVAL = 100, 5
SMALL_JOB = {"model": "mlp", "dataset": "digits", "method": "sdprun", "mlp_widths": [32, 16],
             "epochs": 60, "log_interval": LOG_INTERVAL}
SPARSITY_POINTS = """() => {
  const plot = document.querySelector('#chart-sparsity .chart-plot');
  const badge = document.querySelector('.job-head .badge');
  return {points: plot && plot.data ? plot.data.map((t) => Array.from(t.x)) : [],
          status: badge ? badge.dataset.status : null};
}"""
jobs: dict[str, int] = {}


def test_a_wrong_token_is_refused_with_a_message(context, stack, shot):
    page = context.new_page()
    page.goto(f"{stack['url']}/#/jobs")
    page.wait_for_url("**/#/signin*")
    page.fill("#token", "pb_not-a-real-token")
    page.click("#signin-form button[type=submit]")
    alert = page.locator(".signin [role=alert]")
    alert.wait_for()
    assert "refused" in alert.inner_text() and "invalid token" in alert.inner_text()
    assert "signed-in" not in (page.locator("body").get_attribute("class") or "")
    shot(page, "signin-refused")


def test_sign_in_and_sign_out(context, stack, shot):
    page = context.new_page()
    page.goto(f"{stack['url']}/#/signin")
    shot(page, "signin", phone=False)
    page.fill("#token", stack["token"])
    page.click("#signin-form button[type=submit]")
    page.wait_for_url("**/#/jobs")
    assert page.locator(".identity").inner_text().startswith("admin · admin")
    page.locator("#jobs-table").wait_for()
    page.click("#sign-out")
    page.wait_for_url("**/#/signin")
    # The cookie is gone: the API refuses the next call, so the page asks to sign in again.
    page.goto(f"{stack['url']}/#/workers")
    page.wait_for_url("**/#/signin*")


def test_submit_a_digits_job_through_the_form_and_watch_it(signed_in, stack, api, shot):
    page = signed_in
    page.goto(f"{stack['url']}/#/new")
    page.click("#preset-digits")
    page.fill("#field-name", "browser digits")
    page.fill("#field-tags", "browser, demo")
    page.fill("#field-mlp_widths", "32, 16")
    page.fill("#field-epochs", str(DIGITS_EPOCHS))
    page.fill("#field-log_interval", str(LOG_INTERVAL))

    # Checked in the browser as it is typed.
    page.fill("#field-mu", "1.5")
    assert page.locator("#error-mu").is_visible()
    assert "out of range" in page.inner_text("#error-mu")
    shot(page, "new-job-invalid", phone=False)
    page.fill("#field-mu", "0.6")
    assert page.locator("#error-mu").is_hidden()

    # A rule only the API enforces here (momentum is for sgd): a stale form that sends it gets
    # the API's 422 message at the field.
    page.evaluate("""() => { const m = document.querySelector('#field-momentum');
                             m.disabled = false; m.value = '0.5'; }""")
    page.click("#submit-job")
    page.locator("#error-momentum").wait_for()
    assert "is read only by method sgd" in page.inner_text("#error-momentum")
    assert page.url.endswith("#/new")
    page.select_option("#field-method", "sgd")
    page.select_option("#field-method", "sdprun")  # locks momentum to its default again

    page.click("#submit-job")
    page.wait_for_url(re.compile(r".*#/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    jobs["digits"] = job_id
    assert api.get(f"/jobs/{job_id}").json()["tags"] == ["browser", "demo"]

    # The sparsity chart gains points while the job runs, then the job finishes.
    seen_running = []
    while True:
        state = page.evaluate(SPARSITY_POINTS)
        count = sum(len(x) for x in state["points"])
        if state["status"] == "running" and count:
            if not seen_running:
                shot(page, "job-running", phone=False)
            seen_running.append(count)
        if state["status"] in ("succeeded", "failed", "cancelled"):
            break
        page.wait_for_timeout(250)
        assert len(seen_running) < 400, "the job did not finish within ~100 s"
    assert state["status"] == "succeeded", api.get(f"/jobs/{job_id}").json()["error"]
    assert len(seen_running) >= 2 and seen_running[-1] > seen_running[0], (
        f"the sparsity chart did not grow while the job ran: {seen_running}")

    # Live points are exactly the stored ones: none missed or doubled between the first read
    # and the stream.
    page.wait_for_timeout(500)
    stored = api.get(f"/jobs/{job_id}/metrics", params={
        "keys": "weight_sparsity,group_sparsity", "max_points": 0}).json()["series"]
    shown = page.evaluate(SPARSITY_POINTS)["points"]
    assert shown == [stored["weight_sparsity"]["steps"], stored["group_sparsity"]["steps"]]
    assert len(shown[1]) == DIGITS_EPOCHS * (1437 // 64) // LOG_INTERVAL
    assert page.locator("#job-live").inner_text() == "finished"
    assert page.locator("#chart-heatmap .chart-plot").is_visible()
    assert "%" in page.inner_text("#tile-accuracy")
    assert "succeeded" in page.inner_text("#log")
    assert page.get_attribute("#download-csv", "href") == f"/api/v1/jobs/{job_id}/metrics.csv"
    shot(page, "job-finished")


def test_compare_it_with_a_second_job(signed_in, stack, api, wait_until, shot):
    second = api.post("/jobs", json={**SMALL_JOB, "c": 0.03, "name": "browser c=0.03",
                                     "tags": ["browser"]}).json()["id"]
    jobs["second"] = second
    wait_until(lambda: api.get(f"/jobs/{second}").json()["status"] == "succeeded",
               timeout=90, what=f"job {second} to succeed")
    page = signed_in
    page.goto(f"{stack['url']}/#/jobs?tag=browser")
    for job_id in (jobs["digits"], second):
        page.locator(f"#job-row-{job_id} input[type=checkbox]").check()
    page.click("#compare-picked")
    page.wait_for_url("**/#/compare?ids=*")
    overlay = "#chart-overlay .chart-plot"
    page.wait_for_function(f"document.querySelector('{overlay}').data?.length === 2")
    page.select_option("#compare-key", "test_accuracy")
    page.wait_for_function(f"document.querySelector('{overlay}').data?.[0]?.meta?.endsWith('test_accuracy')")
    assert "test accuracy" in page.inner_text("#chart-overlay .chart-title")
    # Two finished jobs: both on the scatter, and the front holds at least one of them.
    scatter = page.evaluate("""() => document.querySelector('#chart-pareto .chart-plot').data
                               .map((t) => t.x.length)""")
    assert scatter[1] == 2 and scatter[0] >= 1
    assert page.locator("#compare-table tbody tr").count() == 2
    shot(page, "compare")


def test_cancel_a_third_job_and_see_a_queued_one(signed_in, stack, api, wait_until, shot):
    running = api.post("/jobs", json={**SMALL_JOB, "epochs": 3000, "name": "browser long"}).json()
    queued = api.post("/jobs", json={**SMALL_JOB, "name": "browser queued"}).json()
    page = signed_in

    # The one worker is busy, so the second waits: its page says so instead of empty charts.
    page.goto(f"{stack['url']}/#/jobs/{queued['id']}")
    page.locator("#chart-sparsity .chart-message").wait_for()
    assert "queued" in page.inner_text("#chart-sparsity .chart-message")
    shot(page, "job-queued", phone=False)
    page.click("#cancel-job")
    page.wait_for_selector(".job-head .badge[data-status=cancelled]")

    page.goto(f"{stack['url']}/#/jobs")
    row = f"#job-row-{running['id']}"
    page.wait_for_selector(f"{row}[data-status=running]", timeout=60_000)
    page.wait_for_function(f"!document.querySelector('{row} .progress-text').textContent"
                           f".startsWith('0 /')")  # progress arrives from the event stream
    shot(page, "jobs-running", phone=False)
    page.click(f"{row} button.cancel")
    page.wait_for_selector(f"{row}[data-status=cancelled]", timeout=30_000)
    assert page.locator(f"{row} button.retry").is_visible()
    job = api.get(f"/jobs/{running['id']}").json()
    assert job["status"] == "cancelled" and 0 < job["step"] < job["total_steps"]
    shot(page, "jobs")


def test_a_read_token_sees_no_buttons_that_change_jobs(browser, stack, api):
    token = api.post("/tokens", json={"name": "viewer", "scope": "read"}).json()["token"]
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{stack['url']}/#/signin")
        page.fill("#token", token)
        page.click("#signin-form button[type=submit]")
        page.locator("#jobs-table tbody tr[data-status]").first.wait_for()
        assert page.locator("#jobs-table button").count() == 0
        assert page.locator("a.button.primary", has_text="New job").count() == 0
        page.goto(f"{stack['url']}/#/new")
        page.locator("#job-form").wait_for()
        assert page.locator("#submit-job").is_disabled()
    finally:
        context.close()


def test_workers_page_shows_the_local_worker(signed_in, stack, shot):
    page = signed_in
    page.goto(f"{stack['url']}/#/workers")
    page.locator("#workers table").wait_for()
    text = page.inner_text("#workers")
    assert "cpu" in text and "ago" in text
    assert page.inner_text("#workers td[data-label='Data folders']") == "none"
    shot(page, "workers")


def test_workers_page_lists_the_data_folders_each_worker_reports(signed_in, api, stack):
    """The stack's worker reports no folders, so its answer is served with two added."""
    page = signed_in
    worker = api.get("/workers").json()[0]
    folder = {"dataset": "cifar10", "data_dir": "c10", "input_shape": [3, 32, 32],
              "num_classes": 10, "train_size": 50000}
    served = [{**worker, "datasets": [folder, {**folder, "dataset": "mnist", "data_dir": "mnist",
                                               "input_shape": [1, 28, 28], "train_size": 60000}]}]
    page.route("**/api/v1/workers", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(served)))
    page.goto(f"{stack['url']}/#/workers")
    page.locator("#workers table").wait_for()
    assert page.inner_text("#workers th:nth-child(5)") == "Data folders"
    cell = "#workers td[data-label='Data folders']"
    assert page.inner_text(cell) == "cifar10: c10 (50000), mnist: mnist (60000)"
    assert page.get_attribute(f"{cell} .data-folder", "title") == (
        "3×32×32, 10 classes, 50000 training samples")


@pytest.mark.parametrize("path", ["/jobs", f"/jobs/{1}", "/compare?ids=1"])
def test_an_unreachable_api_is_said_in_words(context, stack, shot, path):
    # The network is the boundary: requests to the API fail as if the server were down.
    page = context.new_page()
    page.route("**/api/v1/**", lambda route: route.abort("connectionrefused"))
    page.goto(f"{stack['url']}/#{path}")
    alert = page.locator("[role=alert]").first
    alert.wait_for()
    assert "Cannot reach the Pruneboard API" in alert.inner_text()
    if path == "/jobs":
        shot(page, "unreachable", phone=False)
