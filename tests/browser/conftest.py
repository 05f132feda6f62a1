"""The browser tier: `aiub dashboard --web` driven in a real headless Chromium (selenium, with
Debian's `chromium` and `chromium-driver`; no browser is downloaded).

Runs with `./dev test-browser` (`pytest -m browser tests/browser`), which installs the two
packages with apt-get when they are missing and it can; in any other run its tests are skipped,
and here they skip with the reason when no Chromium or driver is found."""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = ("chromium", "chromium-browser")
DRIVER = "chromedriver"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = "browser" in (config.getoption("markexpr") or "").replace("not browser", "")
    for item in items:
        if "tests/browser/" in item.nodeid:
            item.add_marker(pytest.mark.browser)
            if not selected:
                item.add_marker(pytest.mark.skip(reason="the browser tier runs with ./dev test-browser"))


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """(the browser binary, its driver), or a skip that names what is missing."""
    browser = next((found for name in CHROMIUM if (found := shutil.which(name))), None)
    driver = shutil.which(DRIVER)
    if browser is None or driver is None:
        missing = " and ".join(what for what, path in (("chromium", browser), ("chromedriver", driver)) if not path)
        pytest.skip(f"browser tier: no {missing} (apt-get install chromium chromium-driver)")
    return browser, driver
