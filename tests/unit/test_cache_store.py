"""The cache as the gateway uses it, and the Redis link's bypass window, with fakes and a fake clock."""

from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from services.gateway.cache import CachedAnswer
from services.gateway.cache_store import MemoryStore, RedisStore, ResponseCache, StoreError
from services.gateway.redis_link import RedisLink, RedisUnavailable
from shared.config import RedisSettings
from shared.metrics import GatewayMetrics

ANSWER = CachedAnswer(kind="result", body=b'{"ok":true}')


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeRedis:
    """Just the commands the store uses; `down` makes every call fail like a dead server."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.down = False
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise RedisConnectionError("connection refused")

    async def get(self, key: str) -> bytes | None:
        self._check()
        return self.data.get(key)

    async def set(self, key: str, value: bytes, px: int) -> None:
        self._check()
        self.data[key] = value

    async def aclose(self) -> None:
        return None


def metrics() -> GatewayMetrics:
    return GatewayMetrics(CollectorRegistry())


def value(m: Any) -> float:
    return float(m._value.get())


class FailingStore:
    async def get(self, key: str) -> bytes | None:
        raise StoreError("down")

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        raise StoreError("down")


async def test_a_failing_store_is_a_counted_bypass_never_an_error() -> None:
    m = metrics()
    cache = ResponseCache(FailingStore(), m, 1024)
    assert await cache.get("k") == (None, "bypass")
    assert await cache.put("k", ANSWER, 60) is False
    assert value(m.cache_errors) == 2 and value(m.cache_misses) == 0


async def test_hits_misses_and_the_rate() -> None:
    m = metrics()
    cache = ResponseCache(MemoryStore(10), m, 1024)
    assert await cache.get("k") == (None, "miss")
    assert await cache.put("k", ANSWER, 60)
    assert await cache.get("k") == (ANSWER, "hit")
    assert await cache.get("k") == (ANSWER, "hit")
    assert (value(m.cache_hits), value(m.cache_misses)) == (2, 1)
    assert value(m.cache_hit_rate) == pytest.approx(2 / 3)


async def test_answers_over_the_entry_bound_are_not_stored() -> None:
    store = MemoryStore(10)
    cache = ResponseCache(store, metrics(), max_entry_bytes=5)
    assert await cache.put("k", ANSWER, 60) is False
    assert len(store) == 0


async def test_redis_down_is_skipped_for_the_window_then_asked_again() -> None:
    clock, fake = Clock(), FakeRedis()
    link = RedisLink("redis://unused", RedisSettings(retry_after_s=1.0), clock=clock, client=fake)  # type: ignore[arg-type]
    store = RedisStore(link)
    await store.set("k", b"v", 60)
    assert await store.get("k") == b"v"
    fake.down = True
    with pytest.raises(StoreError):
        await store.get("k")
    calls = fake.calls
    clock.now += 0.999
    with pytest.raises(StoreError):
        await store.get("k")
    assert fake.calls == calls  # inside the window Redis is not asked at all
    clock.now += 0.001
    with pytest.raises(StoreError):
        await store.get("k")
    assert fake.calls == calls + 1  # the window is over: asked again (still down: a new window)
    fake.down = False
    # A lookup without a fallback (API keys) asks even inside the window; its success reopens the link.
    assert await link.run(lambda r: r.get(link.key("cache", "k")), skip_when_down=False) == b"v"
    assert link.up and link.failures == 2
    assert await store.get("k") == b"v"
    fake.down = True
    with pytest.raises(RedisUnavailable):
        await link.run(lambda r: r.get("k"), skip_when_down=False)
