"""Browser test kit: the real stack (`pruneboard up`: API, local worker, SQLite, file-system
broker) in a subprocess, and Debian's Chromium driven by Playwright.

Never downloads a browser: without /usr/bin/chromium (CI installs it with apt) every browser test
is skipped with that reason. Screenshots land in test-artifacts/screenshots/ (git-ignored).

Tests run with --import-mode=importlib, where a test module cannot import this file, so helpers
are handed out as fixtures (``stack``, ``browser``, ``signed_in``, ``shot``, ``api``, ``db``).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from embedded import running_up
from processes import wait_for

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# Set before any page script runs: the charts module then logs when points reach the screen.
TRACE_HOOK = "window.__pbTrace = {points: [], marks: {}};"

HERE = Path(__file__).resolve().parent


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return (f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
                "these tests never download a browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright (Python) is not installed: pip install -e '.[dev]'"
    return None


def pytest_collection_modifyitems(config, items) -> None:
    # A skip marker, not pytest.skip() here: a conftest cannot skip itself at import.
    reason = _missing()
    if reason is None:
        return
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """`pruneboard up` with its own data folder. Two cores are shared by the API, the worker,
    Chromium and the test: torch's extra threads would only spin against them."""
    with running_up(tmp_path_factory.mktemp("browser-stack"), OMP_NUM_THREADS="1") as stack:
        yield stack


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(TRACE_HOOK)
    yield context
    context.close()


@pytest.fixture
def signed_in(context, stack):
    """A page whose context holds the admin session cookie (the sign-in form has its own test)."""
    response = context.request.post(f"{stack['url']}/api/v1/session",
                                    data={"token": stack["token"]})
    assert response.ok, response.text()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="session")
def shot():
    """shot(page, name): full-page screenshots at 1280 px and at 390 px wide."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str, phone: bool = True) -> None:
        page.screenshot(path=SCREENSHOTS / f"{name}-1280.png", full_page=True)
        if phone:
            page.set_viewport_size(PHONE)
            settle(page)
            page.screenshot(path=SCREENSHOTS / f"{name}-390.png", full_page=True)
            page.set_viewport_size(DESKTOP)
            settle(page)
    return take


def settle(page) -> None:
    """Plotly redraws a resized chart after a debounce: wait until every chart has its width."""
    page.wait_for_timeout(300)
    page.wait_for_function("""() => [...document.querySelectorAll('.chart-plot')]
        .filter((p) => !p.hidden && p.data)
        .every((p) => Math.abs(p._fullLayout.width - p.clientWidth) < 2
                      && p.querySelector('.main-svg'))""", timeout=5000)


@pytest.fixture(scope="session")
def api(stack):
    """An HTTP client of the stack with the admin token."""
    with httpx.Client(base_url=f"{stack['url']}/api/v1", timeout=30,
                      headers={"Authorization": f"Bearer {stack['token']}"}) as client:
        yield client


@pytest.fixture(scope="session")
def wait_until():
    return wait_for
