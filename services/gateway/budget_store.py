"""Where budget counters live: Redis (one Lua script checks and charges every budget of a request
atomically, so gateways sharing a Redis admit exactly a budget between them), else this process
(exact for one gateway; each replica would keep its own counters, so without Redis run one
gateway per budgeted key). The arithmetic is budgets.decide's.

Redis failing is not a free pass: a budget is a promise about money, so the in-process counters
take over (like the rate limits) and are exact again only for this gateway's share of traffic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from services.gateway.budgets import Charge, Refusal, decide
from services.gateway.redis_link import RedisLink, RedisUnavailable


class BudgetStore(Protocol):
    async def check_and_charge(self, wanted: Sequence[Charge]) -> Refusal | None: ...
    async def charge(self, deltas: Sequence[Charge]) -> None: ...
    async def spent(self, counters: Sequence[str]) -> list[float]: ...


class LocalBudgets:
    """Counters in a dict; no await between read and write, so atomic under asyncio."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._spent: dict[str, tuple[float, float]] = {}  # counter -> (amount, expires_at)

    def _get(self, counter: str, now: float) -> float:
        found = self._spent.get(counter)
        return found[0] if found is not None and found[1] > now else 0.0

    def _add(self, charges: Sequence[Charge], now: float) -> None:
        for c in charges:
            self._spent[c.counter] = (self._get(c.counter, now) + c.amount, now + c.ttl_s)

    async def check_and_charge(self, wanted: Sequence[Charge]) -> Refusal | None:
        now = self._clock()
        refusal = decide([self._get(c.counter, now) for c in wanted], wanted)
        if refusal is None:
            self._add(wanted, now)
            if len(self._spent) > 100_000:
                self._spent = {k: v for k, v in self._spent.items() if v[1] > now}
        return refusal

    async def charge(self, deltas: Sequence[Charge]) -> None:
        self._add(deltas, self._clock())

    async def spent(self, counters: Sequence[str]) -> list[float]:
        now = self._clock()
        return [self._get(c, now) for c in counters]


# KEYS: one counter per budget. ARGV: force ("1": charge without checking), then per counter its
# limit, amount and ttl (s). Returns {0, ""} when charged, else {i, spent_i} for the first budget
# the request would take past its limit (1-based; nothing charged). Mirrors budgets.decide.
LUA = """
local force = ARGV[1] == '1'
local n = #KEYS
local spent = {}
for i = 1, n do
  spent[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
if not force then
  for i = 1, n do
    local limit = tonumber(ARGV[3 * i - 1])
    local amount = tonumber(ARGV[3 * i])
    if spent[i] + amount > limit + 1e-9 then
      return {i, string.format('%.17g', spent[i])}
    end
  end
end
for i = 1, n do
  local total = spent[i] + tonumber(ARGV[3 * i])
  redis.call('SET', KEYS[i], string.format('%.17g', total), 'EX', tonumber(ARGV[3 * i + 1]))
end
return {0, ''}
"""


class RedisBudgets:
    def __init__(self, link: RedisLink, fallback: LocalBudgets | None = None) -> None:
        self._link = link
        self._fallback = fallback or LocalBudgets()
        self._script = link.script(LUA)
        self.fallbacks = 0

    async def _run(self, charges: Sequence[Charge], force: bool) -> Any:
        keys = [self._link.key(c.counter) for c in charges]
        argv: list[str | int] = ["1" if force else "0"]
        for c in charges:
            argv += [repr(c.budget.limit), repr(c.amount), c.ttl_s]

        return await self._script(keys, argv)

    async def check_and_charge(self, wanted: Sequence[Charge]) -> Refusal | None:
        try:
            index, spent = await self._run(wanted, force=False)
        except RedisUnavailable:
            self.fallbacks += 1
            return await self._fallback.check_and_charge(wanted)
        if int(index) == 0:
            return None
        return Refusal(wanted[int(index) - 1], float(spent))

    async def charge(self, deltas: Sequence[Charge]) -> None:
        try:
            await self._run(deltas, force=True)
        except RedisUnavailable:
            self.fallbacks += 1
            await self._fallback.charge(deltas)

    async def spent(self, counters: Sequence[str]) -> list[float]:
        keys = [self._link.key(c) for c in counters]
        raws = await self._link.run(lambda r: r.mget(keys), skip_when_down=False) if keys else []
        return [float(raw) if raw is not None else 0.0 for raw in raws]
