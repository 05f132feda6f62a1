"""NATS goes away and comes back: every service notices, says so, and serves again on its own.

The server is stopped (not paused) and restarted on the same port with the same state, the way
an operator restarts it; no service is touched.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.embedded_nats import EmbeddedNats
from tests.support.processes import Stack, wait_served, wait_until

pytestmark = pytest.mark.chaos


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


def ready(stack: Stack) -> int:
    try:
        return httpx.get(stack.gateway_url + "/ready", trust_env=False, timeout=1).status_code
    except httpx.HTTPError:
        return 0


def ask(stack: Stack) -> httpx.Response:
    return httpx.post(stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=10,
                      headers={"cache-control": "no-store"},
                      json={"model": "m", "messages": [{"role": "user", "content": "after the restart"}]})


def test_services_reconnect_after_a_nats_restart(own_nats: EmbeddedNats, tmp_path: Path) -> None:
    stack = Stack(tmp_path / "stack", own_nats.url)
    try:
        sim = stack.simulator("openai", ["m"])
        stack.write_config(providers={"p": {"type": "vllm", "base_url": sim.url}},
                           mappings={"exact_matches": {"m": {"provider": "p"}}})
        stack.service("router")
        stack.worker("p")
        stack.gateway()
        wait_served(stack.gateway_url, "m")

        own_nats.stop()
        wait_until(lambda: ready(stack) == 503, 10, "the gateway to report NATS gone")
        refused = ask(stack)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "bus_unavailable"

        own_nats.start()
        wait_until(lambda: ready(stack) == 200, 15, "the gateway to reconnect")
        # Router and worker resubscribe on their own: the same request path works again.
        wait_served(stack.gateway_url, "m", deadline_s=15)
        assert ask(stack).status_code == 200
        assert all(p.alive for p in stack.processes), stack.logs()
    finally:
        stack.stop()


def test_services_asked_to_stop_while_the_bus_is_down_exit_cleanly(own_nats: EmbeddedNats, tmp_path: Path) -> None:
    stack = Stack(tmp_path / "stack", own_nats.url)
    try:
        sim = stack.simulator("openai", ["m"])
        stack.write_config(providers={"p": {"type": "vllm", "base_url": sim.url}},
                           mappings={"exact_matches": {"m": {"provider": "p"}}})
        services = [stack.service("router"), stack.service("health"), stack.worker("p")]
        stack.gateway()
        wait_served(stack.gateway_url, "m")
        own_nats.stop()
        wait_until(lambda: ready(stack) == 503, 10, "the services to lose NATS")
        for service in services:
            service.popen.send_signal(signal.SIGTERM)
            assert service.popen.wait(15) == 0, service.log()[-2000:]
            assert "Traceback" not in service.log(), service.log()[-2000:]
    finally:
        stack.stop()
