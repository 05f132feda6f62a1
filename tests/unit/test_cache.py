from typing import Any

import pytest

from services.gateway.cache import (
    CachedAnswer,
    cache_key,
    cache_mode,
    decode_entry,
    encode_entry,
    replay,
    ttl_for,
)
from services.gateway.cache_store import MemoryStore
from shared.config import CacheSettings
from shared.errors import BadRequest

BODY: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2,
                        "max_tokens": 10}


def key(body: dict[str, Any], tenant: str = "t", kind: str = "chat") -> str:
    return cache_key(kind, body, tenant)


def test_key_is_stable_and_ignores_field_order() -> None:
    reordered = dict(reversed(list(BODY.items())))
    assert key(BODY) == key(reordered) == key(dict(BODY))
    assert len(key(BODY)) == 64


@pytest.mark.parametrize("change", [
    {"temperature": 0.3},
    {"model": "other"},
    {"max_tokens": 11},
    {"top_p": 0.5},
    {"seed": 7},
    {"stop": ["\n"]},
    {"response_format": {"type": "json_object"}},
    {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
    {"messages": [{"role": "user", "content": "hi!"}]},
    {"stream": True},
    {"n": 2},
    {"some_backend_field": 1},  # unknown fields count: a miss is cheap, a wrong hit is not
])
def test_any_field_that_shapes_the_answer_changes_the_key(change: dict[str, Any]) -> None:
    assert key({**BODY, **change}) != key(BODY)


def test_tool_sets_that_differ_only_inside_differ() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    other = {"type": "function", "function": {"name": "g", "parameters": {"type": "object"}}}
    assert key({**BODY, "tools": [tool]}) != key({**BODY, "tools": [other]})


def test_tenant_and_endpoint_scope_the_key() -> None:
    assert key(BODY, tenant="key:a") != key(BODY, tenant="key:b")
    assert key(BODY, kind="chat") != key(BODY, kind="completion")


def test_tenant_boundary_cannot_be_shifted_between_parts() -> None:
    assert cache_key("chat", BODY, "ab") != cache_key("cha", BODY, "tab")


def test_fields_about_the_caller_do_not_split_entries() -> None:
    assert key({**BODY, "user": "alice", "metadata": {"x": "y"}}) == key(BODY)
    assert key({**BODY, "stream": False}) == key(BODY)
    assert key({**BODY, "temperature": 1}) == key({**BODY, "temperature": 1.0})


SETTINGS = CacheSettings(model_ttl_s={"fresh": 0, "short": 5})


@pytest.mark.parametrize(("header", "field", "read", "write"), [
    (None, None, True, True),
    ("no-cache", None, False, True),
    ("No-Cache, max-age=0", None, False, True),
    ("no-store", None, False, False),
    (None, {"no-cache": True}, False, True),
    (None, {"no-store": True}, False, False),
    (None, {"no-cache": False}, True, True),
    (None, "garbage", True, True),
    ("max-age=60", None, True, True),
])
def test_opt_out(header: str | None, field: Any, read: bool, write: bool) -> None:
    mode = cache_mode(SETTINGS, "m", header, field)
    assert (mode.read, mode.write) == (read, write)


def test_disabled_or_zero_ttl_model_is_never_cached() -> None:
    assert not cache_mode(CacheSettings(enabled=False), "m", None, None).used
    assert not cache_mode(SETTINGS, "fresh", None, None).used
    assert ttl_for(SETTINGS, "short") == 5
    assert ttl_for(SETTINGS, "m") == 3600


def test_entry_round_trips_and_unknown_bytes_are_a_miss() -> None:
    answer = CachedAnswer(kind="stream", chunks=(b'{"a":1}', b'{"b":2}'), prompt_tokens=3, completion_tokens=2)
    assert decode_entry(encode_entry(answer)) == answer
    assert decode_entry(b"\x00not msgpack") is None
    assert answer.size() == 14


def test_replay_is_sse_ending_in_done() -> None:
    answer = CachedAnswer(kind="stream", chunks=(b'{"a":1}', b'{"b":2}'))
    assert b"".join(replay(answer)) == b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_store_expires_on_both_sides_of_the_ttl() -> None:
    clock = Clock()
    store = MemoryStore(10, clock)
    store.set_now("k", b"v", 5)
    clock.now += 4.999
    assert store.get_now("k") == b"v"
    clock.now += 0.001
    assert store.get_now("k") is None
    assert len(store) == 0


def test_memory_store_evicts_the_least_recently_used() -> None:
    store = MemoryStore(2, Clock())
    store.set_now("a", b"1", 60)
    store.set_now("b", b"2", 60)
    assert store.get_now("a") == b"1"  # now b is the oldest
    store.set_now("c", b"3", 60)
    assert store.get_now("b") is None
    assert store.get_now("a") == b"1" and store.get_now("c") == b"3"
    assert len(store) == 2


def test_a_body_too_deep_to_key_is_a_bad_request_not_a_crash() -> None:
    deep: object = "x"
    for _ in range(5_000):
        deep = [deep]
    with pytest.raises(BadRequest) as refused:
        cache_key("chat", {"model": "m", "messages": [{"role": "user", "content": "x"}], "x": deep}, "t")
    assert refused.value.param == "body"
