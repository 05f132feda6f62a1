"""Rate limits as GCRA (the generic cell rate algorithm), pure: per minute, requests or tokens.

One number per limit, the theoretical arrival time `tat`: when the bucket would be empty again.
A request of `cost` units moves it `cost * period / limit` later; it is admitted when the new
`tat` is at most one period ahead of now (so a fresh key may spend its whole minute at once and
then earns units back smoothly). Denied requests change nothing.

A request is checked against all its limits at once and charged to all of them only if every
one admits it. Tokens are charged in two steps: the prompt estimate up front (checked), the
completion afterwards (`force`: charged without a check, so it only delays later requests).

The Redis limiter runs the same arithmetic in one Lua script (`LUA`), so gateways sharing a
Redis admit exactly the limit between them; `gcra` here is its reference and the in-process
limiter. Times are float milliseconds in both; the script uses Redis's clock, not the callers'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

PERIOD_MS = 60_000.0
EPSILON_MS = 1e-6  # float rounding must not deny the Nth of N requests

Unit = Literal["requests", "tokens"]


@dataclass(frozen=True)
class Limit:
    key: str  # where its `tat` is kept, e.g. "rl:key:abc:requests"
    unit: Unit
    per_minute: int
    cost: int  # units this request spends


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    reset_ms: float  # until the limit is fully replenished
    retry_ms: float  # until this request would be admitted (0 when it was)


def gcra(tat: float | None, now: float, per_minute: int, cost: int) -> tuple[Decision, float]:
    """Decide one limit; returns the decision and the `tat` to keep if every limit admits."""
    interval = PERIOD_MS / per_minute
    base = tat if tat is not None and tat > now else now
    new_tat = base + cost * interval
    allow_at = new_tat - PERIOD_MS
    if cost > per_minute:  # can never fit: say when the bucket is full, the best it gets
        return Decision(False, _remaining(base, now, interval), base - now, base - now + PERIOD_MS), base
    if allow_at > now + EPSILON_MS:
        return Decision(False, _remaining(base, now, interval), base - now, allow_at - now), base
    return Decision(True, _remaining(new_tat, now, interval), new_tat - now, 0.0), new_tat


def _remaining(tat: float, now: float, interval: float) -> int:
    return max(0, math.floor((PERIOD_MS - (tat - now)) / interval + EPSILON_MS))


def decide(tats: Sequence[float | None], now: float, limits: Sequence[Limit],
           force: bool = False) -> tuple[bool, list[Decision], list[float]]:
    """All limits at once. `force` charges without checking (completion tokens, after the fact)."""
    decisions: list[Decision] = []
    new_tats: list[float] = []
    for tat, limit in zip(tats, limits, strict=True):
        decision, new_tat = gcra(tat, now, limit.per_minute, limit.cost)
        if force and not decision.allowed:
            base = tat if tat is not None and tat > now else now
            new_tat = base + limit.cost * PERIOD_MS / limit.per_minute
        decisions.append(decision)
        new_tats.append(new_tat)
    allowed = force or all(d.allowed for d in decisions)
    return allowed, decisions, new_tats


def format_reset(ms: float) -> str:
    """OpenAI's duration style for `x-ratelimit-reset-*`: `20ms`, `1s`, `6m0s`."""
    if ms < 1000:
        return f"{max(0, math.ceil(ms))}ms"
    seconds = math.ceil(ms / 1000)
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


def headers(limits: Sequence[Limit], decisions: Sequence[Decision]) -> dict[str, str]:
    """OpenAI's `x-ratelimit-*` headers, from the most constrained limit of each unit."""
    out: dict[str, str] = {}
    for unit in ("requests", "tokens"):
        pairs = [(lim, d) for lim, d in zip(limits, decisions, strict=True) if lim.unit == unit]
        if not pairs:
            continue
        limit, decision = min(pairs, key=lambda p: (p[1].remaining, -p[1].reset_ms))
        out[f"x-ratelimit-limit-{unit}"] = str(limit.per_minute)
        out[f"x-ratelimit-remaining-{unit}"] = str(decision.remaining)
        out[f"x-ratelimit-reset-{unit}"] = format_reset(decision.reset_ms)
    return out


def retry_after_s(decisions: Sequence[Decision]) -> float:
    return max(d.retry_ms for d in decisions) / 1000.0


# KEYS: one per limit. ARGV: now_ms ("" = Redis's clock), force ("1"/"0"), then per limit
# per_minute and cost. Returns {allowed, {remaining, reset_ms, retry_ms} per limit}, times as
# integer ms rounded up. Mirrors `gcra` and `decide` above line by line.
LUA = """
local period = 60000.0
local eps = 1e-6
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000.0 + tonumber(t[2]) / 1000.0
else
  now = tonumber(ARGV[1])
end
local force = ARGV[2] == '1'
local n = #KEYS
local all_ok = true
local new_tats = {}
local out = {}
for i = 1, n do
  local per_minute = tonumber(ARGV[1 + 2 * i])
  local cost = tonumber(ARGV[2 + 2 * i])
  local interval = period / per_minute
  local tat = tonumber(redis.call('GET', KEYS[i]))
  local base = now
  if tat and tat > now then base = tat end
  local new_tat = base + cost * interval
  local allow_at = new_tat - period
  local kept = new_tat
  local ok = true
  if cost > per_minute or allow_at > now + eps then
    ok = false
    kept = base
  end
  local retry = 0
  if not ok then
    if cost > per_minute then retry = base - now + period else retry = allow_at - now end
    all_ok = false
  end
  if force then kept = new_tat end
  local remaining = math.floor((period - (kept - now)) / interval + eps)
  if not ok then remaining = math.floor((period - (base - now)) / interval + eps) end
  if remaining < 0 then remaining = 0 end
  new_tats[i] = kept
  out[i] = {remaining, math.ceil(kept - now), math.ceil(retry)}
  if not ok then out[i][2] = math.ceil(base - now) end
end
if force then all_ok = true end
if all_ok then
  for i = 1, n do
    local ttl = math.ceil(new_tats[i] - now)
    if ttl > 0 then
      redis.call('SET', KEYS[i], string.format('%.17g', new_tats[i]), 'PX', ttl)
    end
  end
end
return {all_ok and 1 or 0, out}
"""
