"""Hedging end to end: real router, worker and gateway processes over two simulated engines, one
stalled on demand. A hedged model's answer comes from the engine that answers, the stalled
engine's connection is closed (its `/_sim/stats` counts the aborted stream), the gateway counts
the hedge; without hedging the same request waits for the stalled engine."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import Simulator, Stack, wait_until

AFTER_MS = 300
STALL_S = 3.0
_asked = itertools.count()


@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("hedging")), nats_url)
    models = ["hedged", "plain"]
    s.sims = {name: s.simulator("openai", models, "--engine", "vllm", "--tokens", "8", "--itl-ms", "5")
              for name in ("stalling", "steady")}
    providers = {name: {"type": "vllm", "base_url": sim.url, "max_concurrency": 8, "models": models}
                 for name, sim in s.sims.items()}
    pool = {"providers": ["stalling", "steady"], "strategy": "quality_first"}  # the stalling engine first, always
    s.write_config(providers=providers, mappings={
        "load_balancing": {"hedged": pool, "plain": pool},
        "custom_strategies": {"quality_first": {"priority_order": ["stalling", "steady"]}},
        "hedging": {"hedged": {"after_ms": AFTER_MS, "max_fraction": 0.5}},
    }, runtime={"deadlines": {"accepted_s": 5, "first_token_s": 20, "idle_s": 10, "total_s": 30},
                "cache": {"enabled": False}})
    router = s.service("router")
    worker = s.worker("stalling", "steady")
    s.gateway()
    try:
        wait_until(lambda: "router_ready" in router.log() and "worker_ready" in worker.log(), 30,
                   "the router and the worker to be ready")
        s.wait_serving("plain")
        yield s
        assert router.alive and worker.alive, s.logs()
    finally:
        s.stop()


def stall(sim: Simulator, seconds: float) -> None:
    httpx.post(sim.url + "/_sim/engine", json={"stall_s": seconds}, timeout=2, trust_env=False).raise_for_status()


def ask(stack: Stack, model: str, stream: bool) -> tuple[float, httpx.Response, str]:
    """(seconds to the first content byte, the response, its text)."""
    body: dict[str, Any] = {"model": model, "stream": stream,
                            "messages": [{"role": "user", "content": f"question {next(_asked)}"}]}
    started = time.monotonic()
    with httpx.Client(base_url=stack.gateway_url, timeout=30, trust_env=False) as client, \
            client.stream("POST", "/v1/chat/completions", json=body) as response:
        first = None
        text = []
        for line in response.iter_lines():
            if first is None and '"content":"' in line:
                first = time.monotonic() - started
            text.append(line)
        return (first if first is not None else time.monotonic() - started), response, "\n".join(text)


def hedge_counters(stack: Stack) -> tuple[float, float]:
    text = httpx.get(stack.gateway_url + "/metrics", timeout=2, trust_env=False).text

    def total(name: str) -> float:
        return sum(float(v) for v in re.findall(rf'^{name}_total{{provider="stalling"}} (\S+)', text, re.M))

    return total("gateway_hedges_started"), total("gateway_hedges_won")


def aborted(sim: Simulator) -> int:
    return int(sim.stats()["aborted"])


@pytest.mark.parametrize("stream", [True, False])
def test_a_stalled_engine_is_hedged_and_its_connection_closed(stack: Stack, stream: bool) -> None:
    stalling = stack.sims["stalling"]
    started_before, won_before = hedge_counters(stack)
    aborted_before = aborted(stalling)
    stall(stalling, STALL_S)
    ttft, response, text = ask(stack, "hedged", stream)
    assert response.status_code == 200, text
    assert response.headers["x-aiub-provider"] == "steady"
    assert AFTER_MS / 1000 <= ttft < STALL_S - 1, ttft
    if stream:
        assert text.count("data: [DONE]") == 1 and text.count('"role":"assistant"') == 1  # one clean answer
    answered = time.monotonic()
    wait_until(lambda: aborted(stalling) > aborted_before, 2, "the stalled engine's stream to be closed")
    assert time.monotonic() - answered < 1.0
    wait_until(lambda: hedge_counters(stack) == (started_before + 1, won_before + 1), 2, "the hedge to be counted")


def test_without_hedging_the_request_waits_for_the_stalled_engine(stack: Stack) -> None:
    stalling = stack.sims["stalling"]
    counters = hedge_counters(stack)
    stall(stalling, 1.5)
    ttft, response, _ = ask(stack, "plain", True)
    assert response.status_code == 200
    assert response.headers["x-aiub-provider"] == "stalling"
    assert ttft >= 1.2, ttft
    assert hedge_counters(stack) == counters


def test_a_fast_answer_is_not_hedged(stack: Stack) -> None:
    counters = hedge_counters(stack)
    for _ in range(3):
        _, response, _ = ask(stack, "hedged", True)
        assert response.headers["x-aiub-provider"] == "stalling"
    assert hedge_counters(stack) == counters
