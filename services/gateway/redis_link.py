"""The gateway's one Redis client, shared by the cache, the key store and the rate limiter.

redis-py waits 5 s per command and retries ten times by default: a Redis that is down or stuck
would hold every request for most of a minute. Here each command has a short socket timeout and
no retry, and after a failure Redis is not asked at all for `retry_after_s` (callers bypass it
at once), then the next command tries again: when Redis returns, so does everything it serves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from shared import logs
from shared.config import RedisSettings

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logs.get("gateway.redis")

T = TypeVar("T")


class RedisUnavailable(Exception):
    """Redis failed, timed out, or failed recently enough that it is not being asked."""


class RedisLink:
    def __init__(self, url: str, settings: RedisSettings, clock: Callable[[], float] = time.monotonic,
                 client: aioredis.Redis | None = None) -> None:
        self.settings = settings
        self.prefix = settings.prefix
        self._clock = clock
        # redis-py is imported by a gateway that has a Redis URL, not at every start (~0.15 s of CPU).
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        self._failures = (RedisError, OSError, TimeoutError)
        self.client = client or Redis.from_url(
            url, socket_timeout=settings.socket_timeout_s, socket_connect_timeout=settings.connect_timeout_s,
            retry=Retry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0,
        )
        self._down_until = 0.0
        self.failures = 0

    @property
    def up(self) -> bool:
        return self._clock() >= self._down_until

    async def run(self, op: Callable[[aioredis.Redis], Awaitable[T]], *, skip_when_down: bool = True) -> T:
        """Run one Redis operation or raise RedisUnavailable, never waiting past the timeouts.

        `skip_when_down=False` asks even inside the bypass window: for lookups that have no
        fallback (API keys), one slow cache read must not refuse every key for a second."""
        if skip_when_down and not self.up:
            raise RedisUnavailable("redis is bypassed after a recent failure")
        # redis-py's socket timeout covers each read; this bounds the whole call (connect included).
        budget = self.settings.socket_timeout_s + self.settings.connect_timeout_s
        try:
            async with asyncio.timeout(budget):
                result = await op(self.client)
        except self._failures as e:
            self._failed(e)
            raise RedisUnavailable(type(e).__name__) from None
        if self._down_until:
            self._down_until = 0.0
            log.info("redis_back")
        return result

    def script(self, lua: str) -> Callable[[Sequence[str], Sequence[Any]], Awaitable[Any]]:
        """A Lua script run by its SHA through `run` (redis-py loads it again when Redis forgot it)."""
        registered = self.client.register_script(lua)

        async def call(keys: Sequence[str], args: Sequence[Any]) -> Any:
            return await self.run(lambda r: registered(keys=keys, args=args, client=r))

        return call

    def _failed(self, error: BaseException) -> None:
        if self.up:
            log.warning("redis_unavailable", error=type(error).__name__, bypass_s=self.settings.retry_after_s)
        self.failures += 1
        self._down_until = self._clock() + self.settings.retry_after_s

    async def ping(self) -> bool:
        try:
            return bool(await self.run(lambda r: r.ping()))
        except RedisUnavailable:
            return False

    async def close(self) -> None:
        await self.client.aclose()

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)


def connect(url: str | None, settings: RedisSettings, **kwargs: Any) -> RedisLink | None:
    return RedisLink(url, settings, **kwargs) if url else None
