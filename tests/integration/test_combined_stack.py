"""`aiub up --demo --combined`: gateway, router, health and the worker in one `aiub services` process.

The stack runs as a user runs it (a subprocess with its own embedded NATS and a simulated
backend), once for the module (the kill comes last). A request is served through the one
process; each hosted service answers on its own `/metrics` page with its own metrics; a
`kill -9` of the process is seen by `aiub up`, which starts it again, and requests are served
again.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.processes import wait_until
from tests.support.up import AiubUp

PROVIDER = "ollama"
MODEL = "combined-model"


@pytest.fixture(scope="module")
def combined(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AiubUp]:
    tmp_path = tmp_path_factory.mktemp("combined")
    config = tmp_path / "config"
    config.mkdir()
    (config / "providers.yaml").write_text(yaml.safe_dump({"providers": {PROVIDER: {
        "type": "ollama", "base_url": "http://127.0.0.1:9", "max_concurrency": 8, "models": [MODEL]}}}))
    (config / "model-mappings.yaml").write_text(yaml.safe_dump({"exact_matches": {MODEL: {"provider": PROVIDER}}}))
    up = AiubUp(tmp_path, config, "--demo", "--combined", embedded_nats=True)
    try:
        up.wait_up(60)
        yield up
    finally:
        up.stop()


def _services_pids(up: AiubUp, command: bytes = b"services") -> list[int]:
    """`aiub up`'s children running `cli COMMAND`."""
    pids = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[1]) == up.process.pid and argv[2:4] == [b"cli", command]:
            pids.append(int(pid))
    return pids


def _served(up: AiubUp) -> bool:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
    try:
        reply = httpx.post(up.url + "/v1/chat/completions", json=body, timeout=10, trust_env=False)
    except httpx.HTTPError:
        return False
    return reply.status_code == 200 and bool(reply.json()["choices"][0]["message"]["content"])


@pytest.mark.timeout(120)
def test_one_process_hosts_gateway_router_health_and_worker_and_serves(combined: AiubUp) -> None:
    assert len(_services_pids(combined)) == 1
    assert all(not _services_pids(combined, kind) for kind in (b"gateway", b"router", b"health", b"worker"))
    assert "services.log" in {p.name for p in combined.state_dir.glob("*.log")}
    assert not (combined.state_dir / "router.log").exists() and not (combined.state_dir / "gateway.log").exists()
    wait_until(lambda: _served(combined), 30, "a request served through the combined process", interval_s=0.2)


@pytest.mark.timeout(120)
def test_each_hosted_service_has_its_own_metrics(combined: AiubUp) -> None:
    wait_until(lambda: _served(combined), 30, "a request served", interval_s=0.2)
    metrics = combined.stack()["metrics"]
    assert isinstance(metrics, dict)
    expected = {"gateway": "gateway_requests_total", "router": "router_routing_decisions_total",
                "health": "provider_availability", f"worker-{PROVIDER}": "provider_requests_total"}
    for name, family in expected.items():
        text = httpx.get(metrics[name], timeout=5, trust_env=False).text
        assert family in text, (name, text[:500])
    # Separate registries: the router's page has no worker metrics, and the other way round.
    assert "provider_requests_total" not in httpx.get(metrics["router"], timeout=5, trust_env=False).text
    assert "router_routing_decisions" not in httpx.get(metrics[f"worker-{PROVIDER}"], timeout=5,
                                                       trust_env=False).text


@pytest.mark.timeout(120)
def test_a_killed_combined_process_is_restarted_and_serves_again(combined: AiubUp) -> None:
    wait_until(lambda: _served(combined), 30, "a request served", interval_s=0.2)
    [first] = _services_pids(combined)
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: "services exited" in combined.output(), 15, "aiub up to see the process die")
    wait_until(lambda: bool(_services_pids(combined)) and _services_pids(combined) != [first], 30,
               "a new combined process")
    wait_until(lambda: _served(combined), 45, "requests served again", interval_s=0.2)
