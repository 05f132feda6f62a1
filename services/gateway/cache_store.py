"""Where cached answers live: Redis when configured, else an in-process LRU; and the cache as the
gateway uses it, which never fails a request.

A store error is a miss (or a skipped write), counted in `cache_errors`; the request goes on to
the backend. `cache_hits`, `cache_misses` and `cache_hit_rate` count lookups that the store
answered; bypassed lookups are not misses.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal, Protocol

from services.gateway.cache import CachedAnswer, decode_entry, encode_entry
from services.gateway.redis_link import RedisLink, RedisUnavailable
from shared.metrics import GatewayMetrics

Lookup = Literal["hit", "miss", "bypass"]


class StoreError(Exception):
    pass


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...


class MemoryStore:
    """An LRU bounded by entry count, with a TTL per entry; the clock is injected for tests."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get_now(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires_at, value = found
        if self._clock() >= expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def set_now(self, key: str, value: bytes, ttl_s: float) -> None:
        self._entries[key] = (self._clock() + ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        self.set_now(key, value, ttl_s)


class RedisStore:
    def __init__(self, link: RedisLink) -> None:
        self._link = link

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._link.run(lambda r: r.get(self._link.key("cache", key)))
        except RedisUnavailable as e:
            raise StoreError(str(e)) from None
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        ms = max(1, int(ttl_s * 1000))
        try:
            await self._link.run(lambda r: r.set(self._link.key("cache", key), value, px=ms))
        except RedisUnavailable as e:
            raise StoreError(str(e)) from None


class ResponseCache:
    def __init__(self, store: CacheStore, metrics: GatewayMetrics, max_entry_bytes: int) -> None:
        self.store = store
        self._metrics = metrics
        self._max_entry_bytes = max_entry_bytes
        self.hits = self.misses = self.errors = 0

    async def get(self, key: str) -> tuple[CachedAnswer | None, Lookup]:
        try:
            raw = await self.store.get(key)
        except StoreError:
            self.errors += 1
            self._metrics.cache_errors.inc()
            return None, "bypass"
        answer = decode_entry(raw) if raw is not None else None
        if answer is None:
            self.misses += 1
            self._metrics.cache_misses.inc()
        else:
            self.hits += 1
            self._metrics.cache_hits.inc()
        self._metrics.cache_hit_rate.set(self.hits / (self.hits + self.misses))
        return answer, "miss" if answer is None else "hit"

    async def put(self, key: str, answer: CachedAnswer, ttl_s: float) -> bool:
        if answer.size() > self._max_entry_bytes:
            return False
        try:
            await self.store.set(key, encode_entry(answer), ttl_s)
        except StoreError:
            self.errors += 1
            self._metrics.cache_errors.inc()
            return False
        return True
