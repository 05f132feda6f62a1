"""Routing, balancing and fallback end to end: real router, worker and gateway processes, two
routers sharing one queue group, simulator backends, the OpenAI SDK and the client library.

Knobs a test turns on a shared simulator are turned back in a `finally`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
import openai
import pytest
from nats.aio.msg import Msg

from shared import subjects
from shared.client import InferenceClient
from shared.config import Deadlines
from shared.embedded_nats import free_port
from shared.messages import Accepted, Chunk, Done, Error, encode, work_decoder
from tests.support.processes import Simulator, Stack, wait_until, wait_until_async

EXPECTED = "".join(f"tok{i} " for i in range(16))
CLIENT_DEADLINES = Deadlines(accepted_s=5.0, first_token_s=5.0, idle_s=3.0, total_s=20.0, retry_budget=2)
IMPATIENT = Deadlines(accepted_s=5.0, first_token_s=0.8, idle_s=3.0, total_s=20.0, retry_budget=2)
CONTEXT_ERROR = "This model's maximum context length is 4096 tokens. However, you requested 9000 tokens."


class _TooLong(BaseHTTPRequestHandler):
    """A backend whose every prompt exceeds its context window, in vLLM's words."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps({"error": {"message": CONTEXT_ERROR, "type": "BadRequestError", "code": 400}}).encode()
        self.send_response(400)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def too_long() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _TooLong)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory, too_long: str) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("routing")), nats_url)
    served = ["m", "ha-model", "drop-model", "cap-model", "late-model", "ghost-model", "rr-model", "ll-model",
              "solo-model"]
    sims = {name: s.simulator("openai", served) for name in ("a", "b", "c")}
    sims["broken"] = s.simulator("openai", served, "--error-rate", "1", "--error-status", "503")
    wide: dict[str, Any] = {"type": "vllm", "max_concurrency": 64, "models": {
        "m": {"capabilities": ["pool"]}, "big-model": {"backend_model": "m", "context_window": 32768}}}
    providers = {name: {**wide, "base_url": sim.url} for name, sim in sims.items()}
    providers["capped"] = {"type": "vllm", "base_url": sims["c"].url, "max_concurrency": 1, "queue_size": 0}
    providers["late"] = {"type": "vllm", "base_url": "http://127.0.0.1:9"}  # played by the test itself
    providers["ghost"] = {"type": "vllm", "base_url": "http://127.0.0.1:9"}  # no worker at all
    providers["small"] = {"type": "vllm", "base_url": too_long, "models": {"small-model": {"context_window": 4096},
                                                                           "lonely-model": {"context_window": 4096}}}
    s.write_config(
        providers=providers,
        mappings={
            "exact_matches": {"ha-model": {"provider": "broken"}, "drop-model": {"provider": "a"},
                              "cap-model": {"provider": "capped"}, "late-model": {"provider": "late"},
                              "ghost-model": {"provider": "ghost"}, "small-model": {"provider": "small"},
                              "lonely-model": {"provider": "small"}, "solo-model": {"provider": "b"},
                              "capped-only": {"provider": "capped", "backend_model": "m"}},
            "load_balancing": {"rr-model": {"providers": ["a", "b", "c"], "strategy": "round_robin"},
                               "ll-model": {"providers": ["a", "b"], "strategy": "least_loaded"}},
            "capabilities": {"pool": {"providers": ["b", "c"], "strategy": "round_robin"}},
            "fallback_chains": {"ha-model": ["broken", "a"], "drop-model": ["a", "b"], "cap-model": ["capped", "a"],
                                "late-model": ["late", "a"], "ghost-model": ["ghost", "a"]},
            "context_window_fallbacks": {"small-model": ["big-model"]},
        },
        runtime={"deadlines": {"accepted_s": 5, "first_token_s": 5, "idle_s": 5, "total_s": 30, "retry_budget": 2}},
    )
    s.sims = sims
    s.metrics_ports = [free_port(), free_port()]
    routers = [s.service("router", "--metrics-port", str(port)) for port in s.metrics_ports]
    worker = s.worker("a", "b", "c", "broken", "capped", "small")
    s.gateway()
    try:
        wait_until(lambda: all("router_ready" in p.log() for p in routers) and "worker_ready" in worker.log(), 30,
                   "routers and the worker to be ready")
        yield s
        assert all(p.alive for p in (*routers, worker)), s.logs()
    finally:
        s.stop()


_asked = itertools.count()


def fresh() -> list[Any]:
    """A prompt never sent before: the gateway's response cache must not answer for the router."""
    return [{"role": "user", "content": f"question {next(_asked)}"}]


def sim(stack: Stack, name: str) -> Simulator:
    return stack.sims[name]


@contextlib.contextmanager
def knobs(simulator: Simulator, **changes: Any) -> Iterator[None]:
    before = httpx.get(simulator.url + "/_sim/knobs", timeout=2, trust_env=False).json()
    simulator.knobs(**changes)
    try:
        yield
    finally:
        simulator.knobs(**{k: before[k] for k in changes})


@pytest.fixture
def sdk(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=stack.gateway_url + "/v1", api_key="none", max_retries=0, timeout=20) as client:
        yield client


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[InferenceClient]:
    nc = await nats.connect(stack.nats_url)
    yield await InferenceClient.start(nc, CLIENT_DEADLINES)
    await nc.drain()


async def ask(client: InferenceClient, model: str, **body: Any) -> tuple[str | None, str, list[object]]:
    """One streamed call: (provider that answered, text, frames)."""
    body = {"model": model, "stream": True, "messages": fresh(), **body}
    async with client.call(kind="chat", model=model, body=body, stream=True) as call:
        frames: list[object] = [frame async for frame in call]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for f in frames if isinstance(f, Chunk)
                   for c in map(msgspec.json.decode, f.payloads) if c.get("choices"))
    return call.provider, text, frames


def test_primary_failing_before_first_token_falls_back_to_one_clean_answer(stack: Stack, sdk: openai.OpenAI) -> None:
    errors_before = sim(stack, "broken").stats()["injected_errors"]
    chunks = list(sdk.chat.completions.create(model="ha-model", messages=fresh(),
                                              stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == EXPECTED
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    reply = sdk.chat.completions.create(model="ha-model", messages=fresh())
    assert reply.choices[0].message.content == EXPECTED
    assert sim(stack, "broken").stats()["injected_errors"] == errors_before + 2


def test_failure_after_the_first_chunk_is_an_error_event_and_nothing_is_repeated(stack: Stack) -> None:
    b_before = sim(stack, "b").stats()["requests"]
    with httpx.stream("POST", stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=20, json={
            "model": "drop-model", "stream": True, "messages": fresh(),
            "simulator": {"drop_after": 3}}) as response:
        assert response.status_code == 200
        events = [e[6:] for e in response.read().decode().split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])
    assert "error" in error
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-2])
    assert text == "tok0 tok1 tok2 "
    assert sim(stack, "b").stats()["requests"] == b_before  # no second attempt after content was sent


async def test_round_robin_over_three_providers_is_fair_across_two_routers(client: InferenceClient) -> None:
    gate = asyncio.Semaphore(8)

    async def one() -> str | None:
        async with gate:
            provider, text, _ = await ask(client, "rr-model")
            assert text == EXPECTED
            return provider

    counts = Counter(await asyncio.gather(*(one() for _ in range(300))))
    # Each router rotates strictly (within 1), so two routers together are within 2; 5 is margin.
    assert set(counts) == {"a", "b", "c"}
    assert all(abs(n - 100) <= 5 for n in counts.values()), counts


async def test_least_loaded_steers_away_from_a_slowed_backend(stack: Stack, client: InferenceClient) -> None:
    gate = asyncio.Semaphore(6)

    async def one() -> str | None:
        async with gate:
            provider, text, _ = await ask(client, "ll-model")
            assert text == EXPECTED
            return provider

    # least_loaded balances in-flight counts, so each provider's share is inversely proportional
    # to its latency: b at 2.5 s + L against a at L. Round robin would split 30/30. Alone this
    # gives 54/6; a machine loaded enough to make L 0.9 s still gave 44/16, hence 2x.
    with knobs(sim(stack, "b"), ttft_ms=2500):
        counts = Counter(await asyncio.gather(*(one() for _ in range(60))))
    assert counts["a"] >= 2 * counts["b"], counts


async def test_a_provider_at_its_concurrency_cap_overflows_to_the_next(stack: Stack, client: InferenceClient) -> None:
    with knobs(sim(stack, "c"), ttft_ms=2500):
        holder = asyncio.create_task(ask(client, "cap-model"))
        await wait_until_async(lambda: sim(stack, "c").stats()["active"] >= 1, 5, "c to be busy")
        started = time.monotonic()
        provider, text, _ = await ask(client, "cap-model")
        overflow_s = time.monotonic() - started
        assert (provider, text) == ("a", EXPECTED)
        assert overflow_s < 1.2  # it did not wait for the capped slot
        held_by, held_text, _ = await holder
    assert (held_by, held_text) == ("capped", EXPECTED)


async def test_a_provider_too_busy_with_nothing_after_it_is_503_with_a_retry_after(stack: Stack,
                                                                                  client: InferenceClient) -> None:
    """The OpenAI SDKs wait as long as Retry-After says before they retry a 503."""
    with knobs(sim(stack, "c"), ttft_ms=2500):
        holder = asyncio.create_task(ask(client, "cap-model"))
        await wait_until_async(lambda: sim(stack, "c").stats()["active"] >= 1, 5, "c to be busy")
        _, _, frames = await ask(client, "capped-only")
        refused = frames[-1]
        assert isinstance(refused, Error) and refused.status == 503, frames
        assert "capped (busy)" in refused.error.message and refused.retry_after == 1.0
        assert (await holder)[0] == "capped"


async def test_a_retried_attempts_late_frames_never_reach_the_client(stack: Stack) -> None:
    nc = await nats.connect(stack.nats_url)
    client = await InferenceClient.start(nc, IMPATIENT)
    late_sent = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    async def too_slow_then_talks(order_inbox: str, attempt: str) -> None:
        await nc.publish(order_inbox, encode(Accepted(attempt=attempt, seq=0, provider="late", worker_id="fake",
                                                      control="aiub.control.fake")))
        await asyncio.sleep(IMPATIENT.first_token_s + 0.7)  # the client has moved on to `a` by now
        data = msgspec.Raw(b'{"choices":[{"index":0,"delta":{"content":"STALE "}}]}')
        await nc.publish(order_inbox, encode(Chunk(attempt=attempt, seq=1, data=data)))
        await nc.publish(order_inbox, encode(Done(attempt=attempt, seq=2)))
        await nc.flush()
        late_sent.set()

    async def on_work(msg: Msg) -> None:
        order = work_decoder.decode(msg.data)
        await msg.respond(encode(Accepted(attempt=order.request.attempt, seq=0, provider="late", worker_id="fake",
                                          control="aiub.control.fake")))
        task = asyncio.create_task(too_slow_then_talks(order.reply_inbox, order.request.attempt))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    await nc.subscribe(subjects.work("late"), queue=subjects.worker_queue("late"), cb=on_work)
    await nc.flush()
    try:
        dropped_before = client.dropped_frames
        provider, text, frames = await ask(client, "late-model")
        assert (provider, text) == ("a", EXPECTED)
        assert not any(isinstance(f, Error) for f in frames)
        await asyncio.wait_for(late_sent.wait(), 5)
        await wait_until_async(lambda: client.dropped_frames >= dropped_before + 2, 3, "the late frames to be dropped")
    finally:
        await nc.drain()


async def test_a_provider_with_no_worker_is_skipped_at_once(client: InferenceClient) -> None:
    started = time.monotonic()
    provider, text, frames = await ask(client, "ghost-model")
    assert (provider, text) == ("a", EXPECTED), [getattr(f, "error", f) for f in frames]
    assert time.monotonic() - started < 2.0  # the worker wait is 5 s: no responders answered at once


def test_capability_by_field_and_by_alias_load_balances_the_pool(stack: Stack, sdk: openai.OpenAI) -> None:
    before = {name: sim(stack, name).stats()["requests"] for name in ("a", "b", "c")}
    for _ in range(2):
        reply = sdk.chat.completions.create(model="anything", messages=fresh(),
                                            extra_body={"capability": "pool"})
        assert reply.choices[0].message.content == EXPECTED and reply.model == "m"
        alias = sdk.chat.completions.create(model="capability:pool", messages=fresh())
        assert alias.choices[0].message.content == EXPECTED
    after = {name: sim(stack, name).stats()["requests"] for name in ("a", "b", "c")}
    assert after["a"] == before["a"]
    assert after["b"] - before["b"] + after["c"] - before["c"] == 4
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="capability:nothing", messages=fresh())


def test_context_length_error_moves_to_a_larger_context_model(sdk: openai.OpenAI) -> None:
    reply = sdk.chat.completions.create(model="small-model", messages=fresh())
    assert reply.model == "big-model" and reply.choices[0].message.content == EXPECTED
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="lonely-model", messages=fresh())
    assert "maximum context length" in str(refused.value)  # the backend's own words, not a routing error
    assert refused.value.code == "context_length_exceeded"


@pytest.mark.parametrize(("fault", "status"), [({"error_status": 429, "retry_after": 7}, 429),
                                               ({"error_status": 500}, 500)])
def test_with_nothing_else_to_try_the_caller_gets_the_providers_own_error(stack: Stack, fault: dict[str, Any],
                                                                          status: int) -> None:
    response = httpx.post(stack.gateway_url + "/v1/chat/completions", trust_env=False, timeout=20, json={
        "model": "solo-model", "messages": fresh(), "simulator": {"error_rate": 1, **fault}})
    assert response.status_code == status, response.text
    assert "already tried" not in response.text
    if status == 429:
        assert response.headers["retry-after"] == "7"


def test_router_metrics_count_decisions_fallbacks_and_distribution(stack: Stack, sdk: openai.OpenAI) -> None:
    for model in ("rr-model", "ha-model", "ghost-model"):
        sdk.chat.completions.create(model=model, messages=fresh())
    totals: Counter[str] = Counter()
    for port in stack.metrics_ports:
        for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2, trust_env=False).text.splitlines():
            if line.startswith("router_"):
                name, value = line.rsplit(" ", 1)
                totals[name] += int(float(value))
    assert totals['router_routing_decisions_total{strategy="load_balancing"}'] >= 1
    assert totals['router_routing_decisions_total{strategy="exact_match"}'] >= 2
    assert totals['router_fallback_triggered_total{original_provider="broken"}'] >= 1
    assert totals['router_fallback_triggered_total{original_provider="ghost"}'] >= 1
    assert totals['router_load_balance_distribution_total{provider="a"}'] >= 2



