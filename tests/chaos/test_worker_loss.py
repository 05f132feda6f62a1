"""A worker process killed or frozen while it serves.

Killed: the caller notices in `liveness_s`, not `idle_s`. A killed worker sends nothing more, and
before the liveness probe the caller only learned of it when the idle deadline passed. Here
idle_s is 30 s, so an answer within a few seconds can only come from the probe.

Frozen (SIGSTOP): NATS still hands it its share of the queue group. The router gives up on it
after half the Accepted deadline and the caller retries, so the other replica serves.

Killed with a short idle deadline (and no retries): the stream still ends in an error event.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.embedded_nats import EmbeddedNats
from tests.support.processes import Process, Simulator, Stack, wait_until

pytestmark = pytest.mark.chaos

EXPECTED = "".join(f"tok{i} " for i in range(16))
LIVENESS_S = 1.0
IDLE_S = 30.0
SHORT_IDLE_S = 1.5  # the victim stack's idle deadline (it was the spine's)


@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("worker-loss")), nats_url)
    s.sim = s.simulator("openai", ["loss-model"])
    s.write_config(
        providers={"solo": {"type": "vllm", "base_url": s.sim.url, "max_concurrency": 8}},
        mappings={"exact_matches": {"loss-model": {"provider": "solo"}}},
        runtime={"deadlines": {"first_token_s": IDLE_S, "idle_s": IDLE_S, "liveness_s": LIVENESS_S,
                               "total_s": 60, "retry_budget": 2}},
    )
    s.service("router")
    s.gateway()
    try:
        yield s
    finally:
        s.stop()


def _sim(stack: Stack) -> Simulator:
    return stack.sim


def _serving_worker(stack: Stack) -> Process:
    worker = stack.worker("solo")
    stack.wait_serving("loss-model")
    return worker


def test_a_stream_whose_worker_is_killed_ends_with_an_error_within_the_liveness_probe(stack: Stack) -> None:
    victim = _serving_worker(stack)
    with httpx.stream("POST", stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=60, json={
            "model": "loss-model", "stream": True, "messages": [{"role": "user", "content": "x"}],
            "simulator": {"tokens": 10_000, "itl_ms": 20}}) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
        victim.kill()
        killed_at = time.monotonic()
        rest = list(lines)
    assert time.monotonic() - killed_at < IDLE_S / 4  # without the probe, idle_s would pass first
    events = [line for line in rest if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2][6:])["error"]
    assert error["code"] == "worker_gone" and "stopped mid-request" in error["message"]


def _worker_with_metrics(stack: Stack) -> tuple[Process, str]:
    """A replica serving `solo`, subscribed, and the address of its /metrics page."""
    worker = stack.spawn("worker-solo", "worker", "--config", str(stack.config_dir), "--provider", "solo",
                         "--metrics-port", "0")
    wait_until(lambda: "worker_ready" in worker.log(), 30, "the replica to subscribe")
    ready = next(json.loads(line) for line in worker.log().splitlines() if '"worker_ready"' in line)
    return worker, f"http://127.0.0.1:{ready['metrics_port']}/metrics"


def _in_flight(metrics_url: str) -> float:
    text = httpx.get(metrics_url, trust_env=False, timeout=5).text
    found = re.search(r'^provider_in_flight\{provider="solo"\} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_request_whose_worker_is_killed_before_answering_is_served_by_another(stack: Stack) -> None:
    # Both replicas subscribed before the request, and the one that took it is the one killed: the
    # re-run needs a worker to go to, and a process's start is not what this test measures.
    replicas = [_worker_with_metrics(stack), _worker_with_metrics(stack)]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(httpx.post, stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=60,
                             json={"model": "loss-model", "messages": [{"role": "user", "content": "x"}],
                                   "simulator": {"ttft_ms": 1500}})
        wait_until(lambda: any(_in_flight(url) for _, url in replicas), 10, "a replica to call the backend")
        victim = next(worker for worker, url in replicas if _in_flight(url))
        assert not answer.done(), "answered before the kill: the victim was never killed mid-request"
        victim.kill()
        killed_at = time.monotonic()
        response = answer.result(timeout=60)
    assert time.monotonic() - killed_at < IDLE_S / 4  # without the probe, idle_s would pass first
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == EXPECTED
    for worker, _ in replicas:
        if worker is not victim:
            worker.stop()


def test_a_live_worker_answers_the_probe_and_a_slow_answer_is_not_cut_short(stack: Stack) -> None:
    _serving_worker(stack)
    response = httpx.post(stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=60, json={
        "model": "loss-model", "messages": [{"role": "user", "content": "x"}], "simulator": {"ttft_ms": 3500}})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == EXPECTED


def test_a_frozen_worker_replica_costs_a_retry_not_a_failure(stack: Stack) -> None:
    frozen, alive = _serving_worker(stack), _serving_worker(stack)
    frozen.popen.send_signal(signal.SIGSTOP)
    try:
        answers = [httpx.post(stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=30,
                              json={"model": "loss-model", "messages": [{"role": "user", "content": f"q{i}"}]})
                   for i in range(8)]
    finally:
        frozen.popen.send_signal(signal.SIGCONT)
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers if a.status_code != 200]
    assert all(a.json()["choices"][0]["message"]["content"] == EXPECTED for a in answers)
    assert alive.alive


@pytest.fixture(scope="module")
def victim_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """On a NATS of its own: the module's other stack runs a router too, in the same queue group,
    and that router knows no victim-model (it would answer half the requests with a 404)."""
    bus = EmbeddedNats(Path(tmp_path_factory.mktemp("victim-nats"))).start()
    s = Stack(Path(tmp_path_factory.mktemp("victim")), bus.url)
    sim = s.simulator("openai", ["victim-model"])
    s.write_config(
        providers={"victim": {"type": "vllm", "base_url": sim.url, "max_concurrency": 8}},
        mappings={"exact_matches": {"victim-model": {"provider": "victim"}}},
        runtime={"deadlines": {"first_token_s": 3, "idle_s": SHORT_IDLE_S, "total_s": 30, "retry_budget": 0}},
    )
    s.service("router")
    s.victim_worker = s.worker("victim")
    s.gateway()
    try:
        s.wait_serving("victim-model")
        yield s
    finally:
        s.stop()
        bus.stop()


def test_worker_killed_mid_stream_ends_the_stream_with_an_error(victim_stack: Stack) -> None:
    stack = victim_stack
    victim = stack.victim_worker
    with httpx.stream("POST", stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=30, json={
            "model": "victim-model", "stream": True, "messages": [{"role": "user", "content": "x"}],
            "simulator": {"tokens": 10_000, "itl_ms": 20}}) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
        victim.kill()
        killed_at = time.monotonic()
        rest = list(lines)
    ended_after = time.monotonic() - killed_at
    assert ended_after <= SHORT_IDLE_S + 1.0
    events = [line for line in rest if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert "error" in json.loads(events[-2][6:])
    stack.victim_worker = stack.worker("victim")
