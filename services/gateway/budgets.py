"""Per-key budgets, pure: periods, reset times, cost, and the check-and-charge decision.

A virtual key may carry a token budget and a cost budget per UTC day and per UTC calendar
month (KeyRecord.budget_*). Rules:
- Each budget is one counter per period, named by the period it counts:
  `bg:<tenant>:<unit>:<period>:<period key>` (e.g. `bg:key:ab12:tokens:day:2025-03-01`). A new
  period is a new counter, so a reset needs no job: at 00:00:00 UTC the day's key changes, and
  the month's on the 1st. Counters expire a day after their period ends.
- Admission: a request is admitted when, for every budget of its key, spent + estimate <= limit;
  then the estimate is charged to every counter, all or none (`decide`). The estimate is the
  prompt's (body bytes / 4, as the tpm limit's) and, for a cost budget, its cost at the model's
  highest `cost_per_1k_tokens`.
- Settlement: when the answer is complete, its real usage minus the estimate is charged,
  unchecked (a refund when the estimate was high), to the counters the admission charged, so a
  request admitted at 23:59:59 counts against the day it started in. A long answer may take a
  budget past its limit; the next request is then refused until the period resets.
- The check and the charge happen atomically in one place (a Lua script in Redis mirroring
  `decide`, else one process), so any number of gateways together admit exactly the budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

Period = Literal["day", "month"]
Unit = Literal["tokens", "cost"]
EPSILON = 1e-9  # float sums of costs must not refuse the last request that fits exactly
COUNTER_GRACE_S = 86_400.0  # how long a counter outlives its period (readable, then gone)


@dataclass(frozen=True)
class Budget:
    unit: Unit
    period: Period
    limit: float  # tokens, or the currency of `cost_per_1k_tokens`

    @property
    def name(self) -> str:
        """`daily token budget`, `monthly cost budget`: how a refusal names it."""
        return f"{'daily' if self.period == 'day' else 'monthly'} {'token' if self.unit == 'tokens' else 'cost'} budget"


@dataclass(frozen=True)
class Charge:
    """An amount to add to one budget's counter for the period the request falls in."""

    budget: Budget
    counter: str
    amount: float
    resets_at: float  # epoch seconds: when this counter's period ends
    at: float  # when the request was admitted

    @property
    def ttl_s(self) -> int:
        return max(1, math.ceil(self.resets_at - self.at + COUNTER_GRACE_S))


@dataclass(frozen=True)
class Refusal:
    charge: Charge
    spent: float


def _utc(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


def period_key(period: Period, now: float) -> str:
    """`2025-03-01` for a day, `2025-03` for a month (UTC)."""
    return _utc(now).strftime("%Y-%m-%d" if period == "day" else "%Y-%m")


def period_start(period: Period, now: float) -> float:
    moment = _utc(now)
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        start = start.replace(day=1)
    return start.timestamp()


def resets_at(period: Period, now: float) -> float:
    """When the period `now` falls in ends: the next midnight, or the next month's first midnight (UTC)."""
    start = _utc(period_start(period, now))
    if period == "day":
        return (start + timedelta(days=1)).timestamp()
    return (start.replace(year=start.year + 1, month=1) if start.month == 12
            else start.replace(month=start.month + 1)).timestamp()


def cost(tokens: int, cost_per_1k: float) -> float:
    return tokens * cost_per_1k / 1000.0


def budgets(tokens_day: int | None, tokens_month: int | None, cost_day: float | None,
            cost_month: float | None) -> tuple[Budget, ...]:
    """The budgets a key record names (unset ones are absent)."""
    found: list[Budget] = []
    for unit, period, limit in (("tokens", "day", tokens_day), ("tokens", "month", tokens_month),
                                ("cost", "day", cost_day), ("cost", "month", cost_month)):
        if limit is not None:
            found.append(Budget(unit, period, float(limit)))  # type: ignore[arg-type]
    return tuple(found)


def charges(tenant: str, found: Sequence[Budget], now: float, tokens: int, spend: float) -> list[Charge]:
    """What a request of `tokens` costing `spend` charges to each budget, in the period of `now`."""
    return [Charge(budget=b, counter=f"bg:{tenant}:{b.unit}:{b.period}:{period_key(b.period, now)}",
                   amount=float(tokens) if b.unit == "tokens" else spend, resets_at=resets_at(b.period, now), at=now)
            for b in found]


def settlement(admitted: Sequence[Charge], estimated_tokens: int, estimated_cost: float, tokens: int,
               spend: float) -> list[Charge]:
    """The real usage minus what the admission charged, to the same counters (negative: a refund)."""
    out: list[Charge] = []
    for c in admitted:
        delta = (tokens - estimated_tokens) if c.budget.unit == "tokens" else (spend - estimated_cost)
        if delta != 0:
            out.append(Charge(budget=c.budget, counter=c.counter, amount=float(delta), resets_at=c.resets_at, at=c.at))
    return out


def decide(spent: Sequence[float], wanted: Sequence[Charge]) -> Refusal | None:
    """The check: the first budget the request would take past its limit, or None (admit and
    charge all). The Redis script (budget_store.LUA) does the same arithmetic."""
    for already, charge in zip(spent, wanted, strict=True):
        if already + charge.amount > charge.budget.limit + EPSILON:
            return Refusal(charge, already)
    return None


def _amount(unit: Unit, value: float) -> str:
    return f"{round(value):,} tokens" if unit == "tokens" else f"{value:.6g}"


def message(refusal: Refusal, key_id: str | None) -> str:
    """Says which budget and when it resets, e.g. "over budget: key ab12's daily token budget of
    1,000 tokens has 40 tokens left and this request needs about 120; it resets at 2025-03-02
    00:00 UTC (in 3h12m)"."""
    c, b = refusal.charge, refusal.charge.budget
    left = max(0.0, b.limit - refusal.spent)
    whose = f"key {key_id}'s" if key_id else "this key's"
    when = _utc(c.resets_at).strftime("%Y-%m-%d %H:%M UTC")
    return (f"over budget: {whose} {b.name} of {_amount(b.unit, b.limit)} has {_amount(b.unit, left)} left "
            f"and this request needs about {_amount(b.unit, c.amount)}; it resets at {when} "
            f"(in {_duration(c.resets_at - c.at)})")


def _duration(seconds: float) -> str:
    total = max(0, math.ceil(seconds))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
