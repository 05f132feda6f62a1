"""The GraphQL interface's pure parts: the limits refuse before any resolver runs (the real schema,
executed in process with a counting ring), the route preview, the ring and the feeds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from services.gateway.graphql_api import limits, schema
from services.gateway.graphql_api.live import Feed, Live, RecentRequests, TransitionView
from services.gateway.graphql_api.route_preview import preview
from shared.config import Config, ModelMappingsFile, ProviderSpec, RuntimeFile
from shared.messages import ProviderState, RequestRecord, encode


class CountingRing(RecentRequests):
    def __init__(self) -> None:
        super().__init__(size=10)
        self.reads = 0

    def newest(self, limit: int) -> list[RequestRecord]:
        self.reads += 1
        return super().newest(limit)


def _record(n: int, model: str = "m") -> RequestRecord:
    return RequestRecord(request_id=f"r{n}", client_request_id=None, model=model, kind="chat", stream=False,
                         status=200, cache_hit=False, latency_s=0.1, ttft_s=None, at=float(n))


async def _run(query: str, **variables: Any) -> tuple[Any, CountingRing]:
    live = Live()
    ring = live.requests = CountingRing()
    for n in range(3):
        ring.add(_record(n))
    result = await schema.build().execute(query, variable_values=variables, context_value={"live": live})
    return result, ring


@pytest.mark.parametrize(("query", "variables", "says"), [
    ("query R($n: Int!) { recentRequests(limit: $n) { requestId } }", {"n": limits.MAX_LIST + 1}, "limit 501"),
    ("{ recentRequests(limit: 100000) { requestId } }", {}, "limit 100000"),
    ("{ " + " ".join(f"a{i}: recentRequests {{ requestId }}" for i in range(limits.MAX_ALIASES + 1)) + " }", {},
     "aliases"),
    ("{ " + "recentRequests { requestId } " * 400 + "}", {}, "tokens"),
    ("{ a: recentRequests(limit: 500) { requestId model status kind stream latencyS at cache provider "
     "attempts { attempt provider workerId status error latencyS } } b: recentRequests(limit: 500) { requestId "
     "attempts { attempt provider workerId status error latencyS } } }", {}, "costs more than"),
    ("{ recentRequests { attempts { x { y { z { w { v { u } } } } } } } }", {}, "depth"),
])
async def test_an_abusive_query_is_refused_before_any_resolver_runs(query: str, variables: dict[str, Any],
                                                                    says: str) -> None:
    result, ring = await _run(query, **variables)
    assert result.data is None and result.errors
    assert any(says in e.message for e in result.errors), result.errors
    assert ring.reads == 0


async def test_a_query_within_the_limits_runs() -> None:
    result, ring = await _run("query R($n: Int!) { recentRequests(limit: $n) { requestId } }", n=limits.MAX_LIST)
    assert result.errors is None and ring.reads == 1
    assert [r["requestId"] for r in result.data["recentRequests"]] == ["r2", "r1", "r0"]
    result, _ = await _run("{ recentRequests(limit: 1, model: \"m\") { requestId } }")
    assert result.data == {"recentRequests": [{"requestId": "r2"}]}


def _config() -> Config:
    providers = {name: ProviderSpec.model_validate({"type": "vllm", "base_url": "http://127.0.0.1:1",
                                                     "models": ["qwen-coder"], **extra})
                 for name, extra in (("a", {}), ("b", {}), ("c", {}), ("off", {"status": "disabled"}))}
    mappings = {"load_balancing": {"qwen-coder": {"providers": ["a", "b", "off"], "strategy": "round_robin"}},
                "fallback_chains": {"qwen-coder": ["c", "a"]}}
    return Config(directory=Path("."), providers=providers, mappings=ModelMappingsFile.model_validate(mappings),
                  runtime=RuntimeFile())


def test_the_route_names_who_serves_what_is_next_and_why_the_others_cannot() -> None:
    route = preview(_config(), "qwen-coder", {}, 0.0)
    assert (route.serving, route.next, route.routed_by, route.rule) == ("a", "b", "load_balancing",
                                                                        "load_balancing.qwen-coder")
    assert [(s.provider, s.routable, s.fallback, s.reason) for s in route.steps] == [
        ("a", True, False, None), ("b", True, False, None), ("c", True, True, None),
        ("off", False, False, "disabled")]
    assert route.fallback_chain == ("c", "a") and route.refusal is None

    down = {name: ProviderState(provider=name, state="unavailable") for name in ("a", "c")}
    route = preview(_config(), "qwen-coder", down, 0.0)
    assert (route.serving, route.next) == ("b", None)
    assert {s.provider: s.reason for s in route.steps if not s.routable} == {
        "a": "unavailable", "off": "disabled", "c": "unavailable"}


def test_a_model_with_no_route_says_why() -> None:
    route = preview(_config(), "nothing-serves-this", {}, 0.0)
    assert route.serving is None and route.steps == () and route.refusal is not None
    assert "no route for model" in route.refusal


def test_the_ring_keeps_the_newest() -> None:
    ring = RecentRequests(size=3)
    for n in range(5):
        ring.add(_record(n))
    assert [r.request_id for r in ring.newest(10)] == ["r4", "r3", "r2"]
    assert [r.request_id for r in ring.newest(1)] == ["r4"]


async def test_a_slow_subscriber_loses_its_oldest_items_and_holds_up_nobody() -> None:
    feed: Feed[int] = Feed(queue_size=2)
    slow, fast = feed.follow(), feed.follow()
    waiting = [asyncio.ensure_future(anext(g)) for g in (slow, fast)]
    await asyncio.sleep(0)  # a subscriber's queue exists once its generator has started
    assert feed.subscribers == 2
    feed.publish(0)
    assert [await w for w in waiting] == [0, 0]
    got = []
    for n in range(1, 6):
        feed.publish(n)  # never waits, whoever is behind
        got.append(await anext(fast))
    assert got == [1, 2, 3, 4, 5]
    assert [await anext(slow), await anext(slow)] == [4, 5]  # 1 to 3 were dropped for it
    await slow.aclose()
    await fast.aclose()
    assert feed.subscribers == 0


async def test_a_transition_is_a_change_of_state_after_the_initial_values() -> None:
    view = TransitionView()
    seen = view.transitions.follow()
    pending = asyncio.ensure_future(anext(seen))
    await asyncio.sleep(0)
    view._apply("a", encode(ProviderState(provider="a", state="unavailable", seq=1)), "PUT")  # initial: baseline
    view._snapshot.set()
    view._apply("a", encode(ProviderState(provider="a", state="unavailable", seq=2, probed_at=5.0)), "PUT")
    view._apply("a", encode(ProviderState(provider="a", state="cooldown", seq=3, reason="probe ok")), "PUT")
    transition = await asyncio.wait_for(pending, 1)
    assert (transition.provider, transition.previous, transition.state, transition.reason) == (
        "a", "unavailable", "cooldown", "probe ok")
    await seen.aclose()
