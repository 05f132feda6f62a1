"""A killed gateway frees the backend within one caller check (compose's NATS, a user per service).

Moved from tests/integration/test_compose_nats.py (assertions unchanged); its fixtures are
tests/support/secured_stack.py's."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.processes import Simulator, Stack, wait_until
from tests.support.secured_stack import CALLER_CHECK_S, wait_until_served

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module", autouse=True)
def _served(secured_stack: Stack) -> None:
    """In its integration module the stack had served requests before this test ran."""
    wait_until_served(secured_stack)


def test_a_killed_gateway_frees_the_backend_within_a_caller_check(secured_stack: Stack,
                                                                   secured_nats: dict[str, str]) -> None:
    """Last in the module: it kills the gateway (and starts another for whatever follows)."""
    sim: Simulator = secured_stack.sim
    gateway = next(p for p in secured_stack.processes if p.name == "gateway" and p.alive)
    aborted = sim.stats()["aborted"]
    sim.knobs(tokens=10_000, itl_ms=20)  # 200 s, far past any check
    try:
        with httpx.stream("POST", secured_stack.gateway_url + "/v1/chat/completions", timeout=30, trust_env=False,
                          json={"model": "tiny", "stream": True,
                                "messages": [{"role": "user", "content": "forever"}]}) as response:
            next(response.iter_lines())
            gateway.kill()
            killed_at = time.monotonic()
        wait_until(lambda: sim.stats()["aborted"] > aborted, 10, "the backend connection to close")
        assert time.monotonic() - killed_at < CALLER_CHECK_S + 3
    finally:
        sim.knobs(tokens=16, itl_ms=0)
        secured_stack.gateway("--nats", secured_nats["gateway"])
    assert "Permissions Violation" not in secured_stack.logs()
