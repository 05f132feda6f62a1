"""`aiub dashboard --web` in a real headless Chromium: the master key lets the browser in, and a
provider's state change in the `aiub_health` bucket shows on the page.

The page is textual-serve's: an xterm.js terminal drawing on a canvas, fed over a websocket by
the `aiub dashboard` process it runs for the tab. What the terminal draws is the text that
arrives on that websocket, so a script installed before the page's own records it (decoded
as the terminal decodes it), and the test reads the screen from there."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import nats
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from shared.embedded_nats import free_port
from shared.health_view import open_bucket
from shared.messages import ProviderState, encode

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-browser-test-0123456789"
# Every byte the page's websocket delivers to the terminal, as the terminal decodes it.
RECORD_TERMINAL = """
window.__terminal = [];
const decoder = new TextDecoder();
const Native = window.WebSocket;
window.WebSocket = class extends Native {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (e) => {
      if (typeof e.data !== "string") window.__terminal.push(decoder.decode(new Uint8Array(e.data), {stream: true}));
    });
  }
};
"""
ESCAPES = re.compile(r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78MDEc])")


def state(name: str, state_name: str, seq: int, reason: str) -> bytes:
    return encode(ProviderState(provider=name, state=state_name, since=time.time(), seq=seq, reason=reason,  # type: ignore[arg-type]
                                admit_fraction=0.0 if state_name == "unavailable" else 1.0))


def put(nats_url: str, provider: str, value: bytes) -> None:
    async def put_it() -> None:
        nc = await nats.connect(nats_url)
        try:
            await (await open_bucket(nc.jetstream())).put(provider, value)
        finally:
            await nc.close()

    asyncio.run(put_it())


def wait_for(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def web_dashboard(nats_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "AIUB_MASTER_KEY": KEY, "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "web.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "dashboard", "--web", "--port", str(port), "--nats", nats_url,
         "--metrics", "--state-dir", str(tmp_path), "--config", str(ROOT / "config"), "--refresh", "0.5"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=log)

    def listening() -> bool:
        assert server.poll() is None, (tmp_path / "web.log").read_text()
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_for("the web dashboard to listen", listening, 20)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture
def browser(chromium: tuple[str, str], tmp_path: Path) -> Iterator[webdriver.Chrome]:
    binary, driver = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000",
                     f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(argument)
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield chrome
    finally:
        chrome.quit()


def screen(browser: webdriver.Chrome) -> str:
    return ESCAPES.sub("", "".join(browser.execute_script("return window.__terminal || []")))


def test_the_browser_logs_in_with_the_master_key_and_sees_a_provider_go_down(
        nats_url: str, web_dashboard: str, browser: webdriver.Chrome) -> None:
    provider = "webprov"
    put(nats_url, provider, state(provider, "active", 1, "reason-up-1"))

    assert httpx.get(f"{web_dashboard}/static/js/textual.js").status_code == 401  # nothing without the key
    assert httpx.get(f"{web_dashboard}/?token=sk-wrong").status_code == 401

    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_TERMINAL})
    browser.get(f"{web_dashboard}/")
    assert "master key" in browser.page_source and browser.get_cookies() == []
    browser.get(f"{web_dashboard}/?token={KEY}")
    assert browser.current_url == f"{web_dashboard}/"  # the key left the address bar
    assert [c["name"] for c in browser.get_cookies()] == ["aiub_dashboard"]

    wait_for("the provider's state on the page", lambda: "reason-up-1" in screen(browser), 20)
    assert "reason-down-2" not in screen(browser)
    put(nats_url, provider, state(provider, "unavailable", 2, "reason-down-2"))
    wait_for("the provider to show as down", lambda: "reason-down-2" in screen(browser), 10)
    assert "unavailable" in screen(browser).split("reason-up-1")[-1]
