"""The simulated engine (services/simulator/engine.py): prefix cache, sequence cap, stalls, and
its load in vLLM's, llama.cpp's and Ollama's formats. Plain calls, time passed in."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.simulator.engine import Engine, EngineSettings, chain, prompt_parts
from services.simulator.engine_wire import llamacpp_metrics, llamacpp_slots, ollama_ps, vllm_metrics

SYSTEM = "you are a careful assistant " * 50  # 250 tokens


def engine(**settings: object) -> Engine:
    return Engine(EngineSettings(**settings), random.Random(1))  # type: ignore[arg-type]


def test_a_cached_prefix_starts_faster_by_its_prefill_cost() -> None:
    e = engine(base_ttft_ms=10, prefill_ms_per_token=1.0)
    cold = e.arrive("a", [SYSTEM, "user: hi"], 8, now=0)
    e.finish("a", now=1)
    warm = e.arrive("b", [SYSTEM, "user: hello there"], 8, now=1)
    assert cold is not None and warm is not None
    assert cold.cached_tokens == 0 and cold.ttft_s == pytest.approx((10 + 252) / 1000)
    assert warm.cached_tokens == 250 and warm.ttft_s == pytest.approx((10 + 3) / 1000)
    load = e.load()
    assert (load.prefix_queries, load.prefix_hits) == (252 + 253, 250)


def test_a_part_counts_as_cached_only_after_every_part_before_it() -> None:
    e = engine()
    e.arrive("a", ["system: x", "user: one"], 1, now=0)
    started = e.arrive("b", ["system: y", "user: one"], 1, now=0)  # same message, other system prompt
    assert started is not None and started.cached_tokens == 0


def test_the_sequence_cap_queues_in_arrival_order_and_finish_starts_the_next() -> None:
    e = engine(max_seqs=1)
    assert e.arrive("a", ["p"], 1, now=0) is not None
    assert e.arrive("b", ["p"], 1, now=0) is None
    assert e.arrive("c", ["p"], 1, now=0) is None
    assert (e.load().running, e.load().waiting) == (1, 2)
    assert [s.request for s in e.finish("a", now=1)] == ["b"]
    assert e.finish("c", now=1) == []  # a waiting request whose client left just leaves the queue
    assert (e.load().running, e.load().waiting) == (1, 0)


def test_the_cache_is_bounded_in_tokens_and_evicts_the_least_recently_used() -> None:
    e = engine(cache_tokens=10, prefill_ms_per_token=1.0, base_ttft_ms=0)
    e.arrive("a", ["one two three four five six"], 0, now=0)
    e.arrive("b", ["seven eight nine ten eleven twelve"], 0, now=0)  # 12 tokens > 10: "a" is evicted
    again = e.arrive("c", ["one two three four five six"], 0, now=0)
    assert again is not None and again.cached_tokens == 0


def test_stalls_on_demand_and_at_random() -> None:
    e = engine(base_ttft_ms=0, prefill_ms_per_token=0)
    e.stall(until=5.0)
    assert (s := e.arrive("a", ["p"], 1, now=3.0)) is not None and s.ttft_s == pytest.approx(2.0)
    assert (s := e.arrive("b", ["p"], 1, now=6.0)) is not None and s.ttft_s == 0
    always = engine(base_ttft_ms=0, prefill_ms_per_token=0, stall_rate=1.0, stall_ms=700)
    assert (s := always.arrive("a", ["p"], 1, now=0)) is not None and s.ttft_s == pytest.approx(0.7)


def test_kv_usage_counts_the_running_sequences() -> None:
    e = engine(cache_tokens=100)
    e.arrive("a", ["one two three four"], 6, now=0)
    assert e.load().kv_usage == pytest.approx(0.1)
    e.finish("a", now=1)
    assert e.load().kv_usage == 0


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), max_size=60), st.integers(1, 4))
def test_never_more_running_than_the_cap_and_nothing_lost(ops: list[tuple[bool, int]], cap: int) -> None:
    e = engine(max_seqs=cap)
    live: set[str] = set()
    for i, (arrive, pick) in enumerate(ops):
        if arrive or not live:
            e.arrive(f"r{i}", ["p"], 1, now=i)
            live.add(f"r{i}")
        else:
            gone = sorted(live)[pick % len(live)]
            e.finish(gone, now=i)
            live.discard(gone)
        load = e.load()
        assert load.running <= cap and load.running + load.waiting == len(live)
        assert load.waiting == 0 or load.running == cap


def test_prompt_parts_of_each_dialect() -> None:
    assert prompt_parts({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [
        {"type": "text", "text": "hi"}]}]}) == ["system: s", "user: hi"]
    assert prompt_parts({"system": "s", "messages": [{"role": "user", "content": "hi"}]}) == [
        "system: s", "user: hi"]
    assert prompt_parts({"prompt": "once upon"}) == ["once upon"]
    assert prompt_parts({"input": "embed me"}) == []
    assert chain(["a", "b"])[0] == chain(["a", "c"])[0] != chain(["b"])[0]


def test_load_in_vllm_llamacpp_and_ollama_formats() -> None:
    e = engine(max_seqs=2, cache_tokens=100)
    e.arrive("a", ["one two"], 3, now=0)
    e.arrive("b", ["one"], 0, now=0)
    e.arrive("c", ["one"], 0, now=0)
    load = e.load()
    vllm = vllm_metrics(load, "m").decode()
    assert 'vllm:num_requests_running{model_name="m"} 2.0' in vllm
    assert 'vllm:num_requests_waiting{model_name="m"} 1.0' in vllm
    assert 'vllm:kv_cache_usage_perc{model_name="m"} 0.06' in vllm
    assert "vllm:prefix_cache_hits_total" in vllm and "vllm:prefix_cache_queries_total" in vllm
    llama = llamacpp_metrics(load).decode()
    assert "llamacpp:requests_processing 2.0" in llama and "llamacpp:requests_deferred 1.0" in llama
    assert "llamacpp:kv_cache_usage_ratio 0.06" in llama
    slots = orjson.loads(llamacpp_slots(load))
    assert [s["is_processing"] for s in slots] == [True, True] and slots[0]["n_ctx"] == 50
    ps = orjson.loads(ollama_ps(("llama3.1:8b",), "2030-01-01T00:00:00Z", load))
    assert ps["models"][0]["name"] == "llama3.1:8b" and "size_vram" in ps["models"][0]


def test_the_next_turn_finds_the_reply_the_engine_generated_in_its_cache() -> None:
    e = engine()
    first = ["system: be brief", "user: one two"]
    e.arrive("a", first, 3, now=0)
    reply = "assistant: tok0 tok1 tok2 "
    nxt = e.arrive("b", [*first, reply, "user: three"], 3, now=0)
    assert nxt is not None and nxt.cached_tokens == 3 + 3 + 4  # all but the new user message
