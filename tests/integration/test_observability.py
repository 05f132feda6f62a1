"""One request's story across services, and the worker's counters, with every service a real process."""

from __future__ import annotations

import argparse
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cli import logs as logs_cli
from shared.embedded_nats import free_port, wait_for_port
from tests.support.processes import Process, Stack, wait_until


@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("observability")), nats_url)
    sim = s.simulator("openai", ["obs-model"])
    s.write_config(
        providers={"obsprov": {"type": "vllm", "base_url": sim.url, "max_concurrency": 8,
                               "models": {"obs-model": {}}}},
        mappings={"exact_matches": {"obs-model": {"provider": "obsprov"}}},
        runtime={"deadlines": {"total_s": 20}},
    )
    s.metrics_port = free_port()
    s.service("router", "--log-level", "DEBUG")
    # The worker takes its port from the environment, as `aiub up` and compose give it.
    s.env["AIUB_METRICS_PORT"] = str(s.metrics_port)
    s.worker("obsprov")
    del s.env["AIUB_METRICS_PORT"]
    wait_for_port("127.0.0.1", s.metrics_port, 20)
    s.gateway("--log-level", "DEBUG")
    try:
        yield s
    finally:
        s.stop()


def _metrics(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=2, trust_env=False).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _ok_count(stack: Stack) -> float:
    return _metrics(stack).get(("provider_requests_total", (("outcome", "ok"), ("provider", "obsprov"))), 0.0)


def _chat(stack: Stack, stream: bool = False, request_id: str | None = None) -> httpx.Response:
    headers = {"x-request-id": request_id} if request_id else {}
    # A unique prompt each time: an identical one would be answered by the gateway's cache.
    body = {"model": "obs-model", "stream": stream, "messages": [{"role": "user", "content": uuid.uuid4().hex}]}
    response = httpx.post(stack.gateway_url + "/v1/chat/completions", timeout=10, trust_env=False, headers=headers,
                          json=body)
    assert response.status_code == 200, response.text
    return response


def _lines_with(proc: Process, request_id: str) -> list[dict[str, Any]]:
    found = []
    for text in proc.log().splitlines():
        if request_id in text and text.startswith("{"):
            found.append(json.loads(text))
    return found


def _by_name(stack: Stack, name: str) -> Process:
    return next(p for p in stack.processes if p.name.startswith(name))


@pytest.mark.parametrize("client_id", ["req_abc123", None])
def test_one_request_id_in_the_gateway_router_and_worker_logs(stack: Stack, client_id: str | None) -> None:
    response = _chat(stack, stream=True, request_id=client_id)
    request_id = response.headers["x-request-id"]
    if client_id:
        assert request_id == client_id
    services = {"gateway": _by_name(stack, "gateway"), "router": _by_name(stack, "router"),
                "worker": _by_name(stack, "worker")}
    wait_until(lambda: all(_lines_with(p, request_id) for p in services.values()), 10,
               f"{request_id} in every service's log")
    for name, proc in services.items():
        lines = _lines_with(proc, request_id)
        assert all(line["request_id"] == request_id for line in lines), (name, lines)
        assert all(line["service"] == name for line in lines)
    worker_line = next(line for line in _lines_with(services["worker"], request_id)
                       if line["event"] == "attempt_finished")
    assert worker_line["level"] == "INFO"
    assert worker_line["provider"] == "obsprov" and worker_line["model"] == "obs-model"
    assert worker_line["latency_ms"] > 0 and worker_line["ttft_ms"] > 0
    assert any(line["event"] == "request_routed" for line in _lines_with(services["router"], request_id))


def test_aiub_logs_tells_one_requests_story(stack: Stack) -> None:
    request_id = "req_story_1"
    _chat(stack, request_id=request_id)
    args = argparse.Namespace(state_dir=str(stack.root), service=None, request=request_id, level=None, lines=None,
                              follow=False, json=True)

    def story() -> list[dict[str, Any]]:
        out = io.StringIO()
        assert logs_cli.main(args, out) == 0
        return [json.loads(line) for line in out.getvalue().splitlines()]

    wait_until(lambda: {"gateway", "router", "worker"} <= {line["service"] for line in story()}, 10,
               "the request's lines from every service")
    lines = story()
    assert all(request_id in json.dumps(line) for line in lines)
    assert [line["timestamp"] for line in lines] == sorted(line["timestamp"] for line in lines)


def test_worker_counters_move_by_exactly_the_requests_sent(stack: Stack) -> None:
    # Earlier tests' attempts may still be finishing: start from a settled count.
    wait_until(lambda: _metrics(stack).get(("provider_in_flight", (("provider", "obsprov"),))) == 0, 5,
               "earlier attempts to finish")
    before = _ok_count(stack)
    tokens_before = _metrics(stack).get(("provider_tokens_total", (("direction", "completion"),
                                                                    ("provider", "obsprov"))), 0.0)
    sent = 5
    for i in range(sent):
        _chat(stack, stream=i % 2 == 0)
    wait_until(lambda: _ok_count(stack) >= before + sent, 10, "the worker to count every request")
    after = _metrics(stack)
    assert _ok_count(stack) == before + sent
    labels = (("provider", "obsprov"),)
    assert after[("provider_latency_seconds_count", (("phase", "total"), *labels))] >= sent
    # A stream reports tokens only when the backend sends usage (here: never without include_usage).
    non_streamed = sent // 2
    assert after[("provider_tokens_total", (("direction", "completion"), *labels))] == tokens_before + 16 * non_streamed
    assert after[("request_queue_size", labels)] == 0
    assert ("provider_errors_total", (("kind", "server_error"), *labels)) not in after
