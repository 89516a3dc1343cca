"""`pruneboard report`: one job as an HTML file that opens with no server and no network."""

from __future__ import annotations

import argparse

from cli import report_command


def report(*argv: str) -> int:
    # The command's own parser, so this test needs nothing else from cli.main.
    parser = argparse.ArgumentParser()
    report_command.register(parser.add_subparsers())
    args = parser.parse_args(["report", *argv])
    return args.run(args)


def test_report_opens_offline_with_its_charts(stack, api, browser, wait_until, tmp_path):
    job = api.post("/jobs", json={"model": "mlp", "mlp_widths": [32, 16], "epochs": 30,
                                  "log_interval": 5, "name": "report </script> & co"}).json()
    wait_until(lambda: api.get(f"/jobs/{job['id']}").json()["status"] == "succeeded",
               timeout=90, what=f"job {job['id']} to succeed")
    output = tmp_path / "report.html"
    assert report(str(job["id"]), "-o", str(output), "--url", stack["url"],
                  "--token", stack["token"]) == 0

    context = browser.new_context(offline=True)
    try:
        page = context.new_page()
        requests, errors = [], []
        page.on("request", lambda request: requests.append(request.url))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(output.as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length === 6")
        assert requests == [output.as_uri()] and not errors
        # The job's name is text, not markup: the page and its scripts survive it.
        assert "report </script> & co" in page.inner_text("h1")
        assert "group sparsity" in page.inner_text("body")
    finally:
        context.close()
