"""The pruning forecast in the browser: the New-job form shows, as the config changes, which
layers the threshold alone will force to zero (c and mu follow the chosen model's defaults
until edited), and a job page shows the forecast its job carries."""

from __future__ import annotations

import re

# The audit's run: vgg16-bn on synthetic 3×32×32, 10 epochs of 32 steps.
FORCED = "features.27–40 will be forced to zero at step ~166"


def forecast_text(page) -> str:
    """The forecast line once the form's last change has been answered."""
    page.wait_for_selector("#forecast-box[data-state=ready]", state="attached", timeout=15_000)
    return re.sub(r"\s+", " ", page.inner_text("#forecast-box")).strip()


def test_the_form_forecasts_the_threshold_and_follows_the_models_defaults(signed_in, stack,
                                                                          api, shot):
    page = signed_in
    doc = api.get("/config-spec").json()
    defaults = {name: doc["schema"]["properties"][name]["x-model-defaults"] for name in ("c", "mu")}
    page.goto(f"{stack['url']}/#/new")
    page.locator("#job-form").wait_for()
    forecast_text(page)

    page.select_option("#field-model", "vgg16-bn")
    # Not edited: c and mu take the model family's defaults, as the API would.
    assert page.input_value("#field-c") == str(defaults["c"]["vgg16-bn"])
    assert page.input_value("#field-mu") == str(defaults["mu"]["vgg16-bn"])
    # On digits' 8×8 inputs vgg16-bn cannot run: no forecast, and why.
    assert "none until the API accepts the config" in forecast_text(page)
    page.select_option("#field-dataset", "synthetic")
    page.fill("#field-synthetic_shape", "3, 32, 32")
    page.fill("#field-epochs", "10")
    text = forecast_text(page)
    assert "no layer is forced to zero by the threshold alone within the 320 steps" in text, text

    page.fill("#field-c", "0.015")
    page.fill("#field-mu", "0.6")
    text = forecast_text(page)
    assert FORCED in text and "of 320." in text and "ignoring the gradient" in text, text
    page.locator("#forecast .forecast-layers summary").click()
    row = page.locator('#forecast tr[data-layer="features.27"]')
    assert "~166" in row.inner_text() and "100 %" in row.inner_text()
    shot(page, "new-job-forecast", phone=False)

    # Edited by the user, c and mu stay when the model changes.
    page.select_option("#field-model", "resnet20")
    assert page.input_value("#field-c") == "0.015"
    assert page.input_value("#field-mu") == "0.6"
    # resnet20's groups are smaller: in 320 steps the threshold forces none of them.
    assert "no layer is forced to zero" in forecast_text(page)

    # A method without a threshold has no forecast.
    page.select_option("#field-method", "sgd")
    assert forecast_text(page) == ""


def test_a_fresh_form_gives_c_and_mu_of_the_model_picked(signed_in, stack, api):
    page = signed_in
    page.goto(f"{stack['url']}/#/new")
    page.locator("#job-form").wait_for()
    page.select_option("#field-model", "resnet56")
    assert page.input_value("#field-c") == "0.005"
    page.select_option("#field-model", "cnn-small")
    assert page.input_value("#field-c") == "0.015"
    assert page.input_value("#field-mu") == "0.6"


def test_the_job_page_shows_the_forecast_of_its_job(signed_in, stack, api, wait_until, shot):
    # The digits MLP with a large c: its second layer is forecast to go within the run.
    body = {"name": "forecast demo", "model": "mlp", "dataset": "digits", "mlp_widths": [32, 16],
            "epochs": 3, "c": 0.1, "log_interval": 5}
    job = api.post("/jobs", json=body).json()
    assert job["warnings"], job
    page = signed_in
    page.goto(f"{stack['url']}/#/jobs/{job['id']}")
    line = page.locator("#job-forecast-line")
    line.wait_for()
    assert "will be forced to zero" in line.inner_text()
    assert "threshold alone" in line.inner_text()
    wait_until(lambda: api.get(f"/jobs/{job['id']}").json()["status"] == "succeeded",
               timeout=120, what="the forecast demo job to finish")
    page.reload()
    page.locator("#job-forecast-line").wait_for()
    served = api.get(f"/jobs/{job['id']}").json()["forecast"]
    summary = page.locator("#job-forecast .forecast-layers summary")
    assert ("run's own initial weights" if served["basis"] == "engine"
            else "before the run") in summary.inner_text()
    shot(page, "job-forecast", phone=False)
