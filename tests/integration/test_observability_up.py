"""`aiub up` as a user runs it: every service's /metrics port printed, listed in stack.json and
serving; one request then shows in the worker's counters and in `aiub logs --request`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shared.embedded_nats import free_port
from shared.processes import die_with_parent
from tests.support.processes import wait_until
from tests.support.up import AiubUp


@pytest.fixture(scope="module")
def up(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, list[str]]]:
    root = tmp_path_factory.mktemp("up")
    config = root / "config"
    config.mkdir()
    (config / "providers.yaml").write_text(yaml.safe_dump({"providers": {
        "ollama": {"type": "ollama", "base_url": "http://127.0.0.1:9", "models": {"llama3.1:8b": {}}}}}))
    (config / "model-mappings.yaml").write_text(yaml.safe_dump({"exact_matches": {"llama3.1:8b": {
        "provider": "ollama"}}}))
    stack = AiubUp(root, config, "--demo", "--nats", nats_url)
    try:
        stack.wait_up()
        yield stack.state_dir, stack.port, stack.output().splitlines()
    finally:
        stack.stop()


def test_every_service_gets_a_metrics_port_that_serves(up: tuple[Path, int, list[str]]) -> None:
    state, port, lines = up
    printed = dict(re.findall(r"^\s+(\S+)\s+pid \d+\s+metrics (http://\S+)", "\n".join(lines), re.MULTILINE))
    assert set(printed) == {"router", "health", "worker-ollama", "gateway"}
    assert printed["gateway"] == f"http://127.0.0.1:{port}/metrics"
    assert json.loads((state / "stack.json").read_text())["metrics"] == printed
    for url in printed.values():
        wait_until(lambda u=url: _get(u) is not None, 20, f"{url} to serve")
    assert "provider_availability" in (_get(printed["health"]) or "")
    assert "router_routing_decisions" in (_get(printed["router"]) or "")


def test_a_request_shows_in_the_counters_and_the_logs(up: tuple[Path, int, list[str]]) -> None:
    state, port, _ = up
    worker = json.loads((state / "stack.json").read_text())["metrics"]["worker-ollama"]
    reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=20, trust_env=False,
                       headers={"x-request-id": "req_up_1"},
                       json={"model": "llama3.1:8b", "messages": [{"role": "user", "content": "count me once"}]})
    assert reply.status_code == 200, reply.text
    wait_until(lambda: _ok_count(_get(worker)) == 1, 10, "the worker to count the request")
    logs = subprocess.run([sys.executable, "-m", "cli", "logs", "--state-dir", str(state), "--request",
                           "req_up_1", "--json"], capture_output=True, text=True, timeout=30)
    events = [(line["service"], line["event"]) for line in map(json.loads, logs.stdout.splitlines())]
    assert ("worker", "attempt_finished") in events, logs.stdout + logs.stderr


def _ok_count(text: str | None) -> float:
    samples = [s for f in text_string_to_metric_families(text or "") for s in f.samples]
    return sum(s.value for s in samples if s.name == "provider_requests_total"
               and s.labels == {"provider": "ollama", "outcome": "ok"})


def _get(url: str) -> str | None:
    try:
        response = httpx.get(url, timeout=2, trust_env=False)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def test_a_service_that_refuses_to_start_says_why_on_the_terminal(nats_url: str, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "providers.yaml").write_text(yaml.safe_dump({"providers": {
        "ollama": {"type": "ollama", "base_url": "http://127.0.0.1:9", "models": {"llama3.1:8b": {}}}}}))
    (config / "model-mappings.yaml").write_text("{}")
    env = {k: v for k, v in os.environ.items() if k != "AIUB_MASTER_KEY"}
    done = subprocess.run([sys.executable, "-m", "cli", "up", "--host", "0.0.0.0", "--config", str(config),
                           "--port", str(free_port()), "--state-dir", str(tmp_path / "state"), "--nats", nats_url],
                          capture_output=True, text=True, timeout=90, env=env, preexec_fn=die_with_parent)
    assert done.returncode != 0
    assert "gateway exited with 2" in done.stderr
    assert "refusing to serve 0.0.0.0 without authentication" in done.stderr and "$AIUB_MASTER_KEY" in done.stderr
