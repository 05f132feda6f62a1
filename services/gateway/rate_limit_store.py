"""Where rate-limit state lives: Redis (one Lua script per check, atomic across gateways), else this
process. When Redis fails, limits are kept in-process until it answers again: each gateway then
enforces the limits on its own share of traffic, which is better than none and never fails a
request for want of a counter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from services.gateway.gcra import LUA, Decision, Limit, decide
from services.gateway.redis_link import RedisLink, RedisUnavailable


class Limiter(Protocol):
    async def check(self, limits: Sequence[Limit]) -> tuple[bool, list[Decision]]: ...
    async def charge(self, limits: Sequence[Limit]) -> None: ...


class LocalLimiter:
    """The same GCRA, with `tat`s in a dict. No await between read and write: atomic under asyncio."""

    def __init__(self, clock: Callable[[], float] = time.time, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._tats: dict[str, float] = {}
        self._max_keys = max_keys

    def _now_ms(self) -> float:
        return self._clock() * 1000.0

    def _apply(self, limits: Sequence[Limit], force: bool) -> tuple[bool, list[Decision]]:
        now = self._now_ms()
        allowed, decisions, new_tats = decide([self._tats.get(lim.key) for lim in limits], now, limits, force)
        if allowed:
            for limit, tat in zip(limits, new_tats, strict=True):
                self._tats[limit.key] = tat
            if len(self._tats) > self._max_keys:
                # A `tat` in the past is the same as no entry at all.
                self._tats = {k: t for k, t in self._tats.items() if t > now}
        return allowed, decisions

    async def check(self, limits: Sequence[Limit]) -> tuple[bool, list[Decision]]:
        return self._apply(limits, force=False)

    async def charge(self, limits: Sequence[Limit]) -> None:
        self._apply(limits, force=True)


def _decisions(reply: Any) -> tuple[bool, list[Decision]]:
    allowed, rows = reply
    decisions = [Decision(allowed=row[2] == 0, remaining=int(row[0]), reset_ms=float(row[1]),
                          retry_ms=float(row[2])) for row in rows]
    return bool(allowed), decisions


class RedisLimiter:
    def __init__(self, link: RedisLink, fallback: LocalLimiter | None = None) -> None:
        self._link = link
        self._fallback = fallback or LocalLimiter()
        self._script = link.script(LUA)
        self.fallbacks = 0

    async def _run(self, limits: Sequence[Limit], force: bool, now_ms: float | None = None) -> Any:
        keys = [self._link.key(limit.key) for limit in limits]
        argv: list[str | int] = ["" if now_ms is None else repr(now_ms), "1" if force else "0"]
        for limit in limits:
            argv += [limit.per_minute, limit.cost]

        return await self._script(keys, argv)

    async def check(self, limits: Sequence[Limit]) -> tuple[bool, list[Decision]]:
        try:
            return _decisions(await self._run(limits, force=False))
        except RedisUnavailable:
            self.fallbacks += 1
            return await self._fallback.check(limits)

    async def charge(self, limits: Sequence[Limit]) -> None:
        try:
            await self._run(limits, force=True)
        except RedisUnavailable:
            self.fallbacks += 1
            await self._fallback.charge(limits)

    async def evaluate_at(self, limits: Sequence[Limit], now_ms: float, force: bool = False) -> tuple[bool,
                                                                                                     list[Decision]]:
        """The script at a given clock: for tests that hold it to the pure `decide`."""
        return _decisions(await self._run(limits, force, now_ms))
