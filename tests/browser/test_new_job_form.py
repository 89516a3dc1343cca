"""The New job form builds itself from the one document GET /config-spec serves (the job body's
JSON Schema, its sections, presets, data folders and limits), in Chromium against the real stack.

Every expectation is read from the served document, not written here, so these tests check that
the form follows the spec rather than a copy of it.
"""

from __future__ import annotations

import json
import re

import pytest

READ_FORM = """() => Object.fromEntries([...document.querySelectorAll('#job-form [id^="field-"]')]
  .map((el) => [el.id.slice(6), {value: el.type === 'checkbox' ? el.checked : el.value,
                                 disabled: el.disabled, tag: el.tagName.toLowerCase()}]))"""


@pytest.fixture(scope="module")
def doc(api):
    body = api.get("/config-spec").json()
    assert isinstance(body, dict) and "schema" in body, (
        f"GET /config-spec does not serve the form's document yet: {str(body)[:200]}")
    return body


def open_form(page, stack):
    page.goto(f"{stack['url']}/#/new")
    page.locator("#job-form").wait_for()
    return page.evaluate(READ_FORM)


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def shown(value) -> str:
    """What the form shows for a value (lists comma-separated, none empty)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(shown(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def at_default(field: dict, default) -> bool:
    value = field["value"]
    if isinstance(default, bool):
        return value is default
    if isinstance(default, (int, float)):
        return value != "" and float(value) == float(default)
    if isinstance(default, list) and all(isinstance(v, (int, float)) for v in default):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        return [float(p) for p in parts] == [float(v) for v in default]
    return value == shown(default)


def rule_met(form: dict, rule: dict) -> bool:
    return form[rule["field"]]["value"] in [shown(v) for v in rule["one_of"]]


def check_rules(form: dict, properties: dict) -> list[str]:
    """Every x-requires: locked at the default exactly when its rule is unmet."""
    wrong = []
    for name, prop in properties.items():
        rule = prop.get("x-requires")
        if not rule:
            continue
        met = rule_met(form, rule)  # a locked field counts with its default, as in the API
        if form[name]["disabled"] == met:
            wrong.append(f"{name}: disabled={form[name]['disabled']} with {rule['field']}="
                         f"{form[rule['field']]['value']!r}")
        elif not met and not at_default(form[name], prop.get("default")):
            wrong.append(f"{name}: locked at {form[name]['value']!r}, not its default")
    return wrong


def test_every_property_of_the_served_schema_has_its_input_and_help(signed_in, stack, doc, shot):
    page = signed_in
    form = open_form(page, stack)
    properties = doc["schema"]["properties"]
    assert set(properties) <= set(form), f"no input for {sorted(set(properties) - set(form))}"
    for name, prop in properties.items():
        help_text = squash(page.locator(f"#help-{name}").text_content())
        assert squash(prop["description"]) in help_text, (name, help_text)
        assert page.locator(f"#error-{name}").count() == 1
        if "enum" in prop:
            options = page.eval_on_selector_all(f"#field-{name} option",
                                                "os => os.map(o => o.value)")
            assert options == [shown(v) for v in prop["enum"]], name
        if prop.get("type") == "boolean":
            assert page.get_attribute(f"#field-{name}", "type") == "checkbox", name
    # Sections in the served order; a property lands in the fieldset its x-section names.
    legends = page.eval_on_selector_all("#job-form legend", "ls => ls.map(l => l.textContent)")
    assert legends == [t for t in doc["sections"] + ["Other"] if t in legends]
    for name, prop in properties.items():
        legend = page.eval_on_selector(
            f"#field-{name}", "el => el.closest('fieldset').querySelector('legend').textContent")
        section = prop.get("x-section")
        assert legend == (section if section in doc["sections"] else "Other")
    # The first available preset is applied on load.
    first = next(p for p in doc["presets"] if p["available"])
    for name, value in first["values"].items():
        assert at_default(form[name], value), (name, form[name], value)
    shot(page, "new-job-form")


def test_a_number_out_of_range_is_marked_as_it_is_typed(signed_in, stack, doc):
    page = signed_in
    form = open_form(page, stack)
    properties = doc["schema"]["properties"]
    name, prop = next((n, p) for n, p in properties.items()
                      if p.get("type") in ("integer", "number") and "maximum" in p
                      and not form[n]["disabled"])
    page.fill(f"#field-{name}", shown(prop["maximum"] * 10 + 1))
    error = page.locator(f"#error-{name}")
    assert error.is_visible()
    assert "out of range" in error.inner_text()
    assert page.get_attribute(f"#field-{name}", "aria-invalid") == "true"
    page.fill(f"#field-{name}", shown(prop["default"]))
    assert error.is_hidden()
    # An item of a list is checked against the items' own bounds too.
    lists = [(n, p) for n, p in properties.items() if p.get("type") == "array"
             and "maximum" in p.get("items", {}) and not form[n]["disabled"]]
    for name, prop in lists[:1]:
        too_big = prop["items"]["maximum"] * 10 + 1
        page.fill(f"#field-{name}", f"{shown(prop['default'][:1] or [1])}, {too_big}")
        assert "out of range" in page.inner_text(f"#error-{name}")
        page.fill(f"#field-{name}", shown(prop["default"]))
        assert page.locator(f"#error-{name}").is_hidden()


def test_a_field_whose_rule_is_unmet_is_locked_at_its_default(signed_in, stack, doc):
    page = signed_in
    properties = doc["schema"]["properties"]
    form = open_form(page, stack)
    assert check_rules(form, properties) == []

    momentum = properties["momentum"]
    page.select_option("#field-method", "sdprun")
    form = page.evaluate(READ_FORM)
    assert "sdprun" not in momentum["x-requires"]["one_of"]
    assert form["momentum"]["disabled"] and at_default(form["momentum"], momentum["default"])

    page.select_option("#field-method", "sgd")
    form = page.evaluate(READ_FORM)
    assert not form["momentum"]["disabled"]
    assert check_rules(form, properties) == []
    page.fill("#field-momentum", "0.5")
    assert page.locator("#error-momentum").is_hidden()

    # Back to a method that does not read it: locked again, and back at its default.
    page.select_option("#field-method", "sdprun")
    form = page.evaluate(READ_FORM)
    assert form["momentum"]["disabled"] and at_default(form["momentum"], momentum["default"])
    assert check_rules(form, properties) == []


def test_presets_that_cannot_run_here_are_disabled_with_their_reason(signed_in, stack, doc, shot):
    page = signed_in
    open_form(page, stack)
    presets = doc["presets"]
    assert page.locator(".presets button").count() == len(presets)
    unavailable = [p for p in presets if not p["available"]]
    assert unavailable, "the test stack has no data folders, so some preset should be unavailable"
    for preset in presets:
        button = page.locator(f"#preset-{preset['id']}")
        assert button.inner_text() == preset["label"]
        if preset["available"]:
            assert button.is_enabled()
            continue
        assert button.is_disabled()
        assert button.get_attribute("title") == preset["disabled_reason"]
        reason = page.locator(f"#preset-reason-{preset['id']}")
        assert reason.is_visible()
        assert squash(reason.inner_text()) == squash(preset["disabled_reason"])
    shot(page, "new-job-presets", phone=True)


def test_service_limits_are_listed_under_the_form(signed_in, stack, doc):
    page = signed_in
    open_form(page, stack)
    limits = page.locator("#service-limits")
    limits.locator("summary").click()
    text = squash(limits.inner_text())
    for name, limit in doc["limits"].items():
        assert f"{name}: {limit['value']:,}" in text, name
        assert squash(limit["help"]) in text


def test_a_folder_dataset_without_a_reported_folder_is_refused_at_data_dir(signed_in, stack, doc):
    page = signed_in
    properties = doc["schema"]["properties"]
    reported = {f["dataset"] for f in doc["datasets"]["folders"]}
    missing = [d for d in properties["dataset"]["x-builtin"]
               if d not in doc["datasets"]["builtin"] and d not in reported]
    # The browser stack's worker has an empty data root, so no folder dataset is reported.
    assert missing, doc["datasets"]["folders"]
    dataset = "cifar10" if "cifar10" in missing else missing[0]
    open_form(page, stack)

    # A builtin dataset: data_dir is locked at "none".
    assert page.locator("#field-data_dir").is_disabled()
    assert page.input_value("#field-data_dir") == ""
    assert page.locator("#note-data_dir").is_hidden()

    page.select_option("#field-dataset", dataset)
    note = page.locator("#note-data_dir")
    assert note.is_visible()
    assert f"no live worker reports a {dataset} folder" in note.inner_text()
    assert page.locator("#field-data_dir").is_enabled()
    assert page.input_value("#field-data_dir") == ""

    with page.expect_response(lambda r: r.url.endswith("/api/v1/jobs")
                              and r.request.method == "POST") as answer:
        page.click("#submit-job")
    assert answer.value.status == 422
    refused = {d["field"]: d["message"] for d in answer.value.json()["detail"]}
    assert "data_dir" in refused, refused
    error = page.locator("#error-data_dir")
    error.wait_for()
    assert refused["data_dir"] in error.inner_text()
    assert page.url.endswith("#/new")

    # Back to a builtin dataset: locked at "none" again, the note gone.
    page.select_option("#field-dataset", doc["datasets"]["builtin"][0])
    assert page.locator("#field-data_dir").is_disabled()
    assert page.locator("#note-data_dir").is_hidden()


def test_data_dir_offers_the_folders_workers_report(signed_in, stack, doc):
    """The stack's worker has no data folders, so the document is served with one added."""
    page = signed_in
    folder = {"dataset": "cifar10", "data_dir": "cifar10-small", "input_shape": [3, 32, 32],
              "num_classes": 10, "train_size": 15}
    served = json.loads(json.dumps(doc))
    served["datasets"]["folders"] = [folder, {**folder, "dataset": "mnist", "data_dir": "mnist-a",
                                              "input_shape": [1, 28, 28], "train_size": 60000}]
    page.route("**/api/v1/config-spec", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(served)))
    open_form(page, stack)

    page.select_option("#field-dataset", "cifar10")
    options = page.eval_on_selector_all("#field-data_dir option",
                                        "os => os.map(o => [o.value, o.textContent])")
    assert options == [["cifar10-small", "cifar10-small (15 samples, 3×32×32)"]]
    assert page.input_value("#field-data_dir") == "cifar10-small"
    assert page.locator("#note-data_dir").is_hidden()
    page.select_option("#field-dataset", "mnist")
    assert page.input_value("#field-data_dir") == "mnist-a"
    page.select_option("#field-dataset", "cifar100")
    assert "no live worker reports a cifar100 folder" in page.inner_text("#note-data_dir")
    page.select_option("#field-dataset", "digits")
    options = page.eval_on_selector_all("#field-data_dir option",
                                        "os => os.map(o => [o.value, o.textContent])")
    assert options == [["", "none"]]
    assert page.locator("#field-data_dir").is_disabled()
