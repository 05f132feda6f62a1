"""Hedging: when a caller starts a second attempt of a request, and how many its budget allows. Pure.

The router offers a hedge (`HedgeOffer`: the accepting provider, `after_s`, `max_fraction`, the
budget's `group`) once a worker accepted an attempt of a model with `hedging` settings
(docs/routing.md, "Hedging"). The caller (`shared/client.py`, the shell) reads its clock and asks
`decide`; nothing here does I/O or keeps time. Rules:

- At most one hedge per request, started only while exactly one attempt runs and no content has
  reached the consumer; a hedge attempt is never hedged again (the router sends it no offer).
- Due at `started + after_s`, `started` being when the offered attempt began on the caller's
  clock. `now < due`: `Wait`. `now >= due`: `Hedge` if the budget has a whole token, else `Skip`
  (this request is not hedged; its attempt runs on under its usual deadlines).
- The budget is per group and per caller process: a token bucket counted in requests, not in
  time. Every request offered a hedge earns `max_fraction` of a token (once, for its first
  attempt's offer), up to `capacity` = max(1, max_fraction x BURST_REQUESTS); a hedge spends one.
  It starts full. So in any run of n consecutive offered requests at most
  capacity + max_fraction x n are hedged: when every attempt is slow (an outage), the extra load
  is max_fraction after one burst, never double. The bucket's memory is its only window.
- Fractions are summed in floats: a token counts as whole from 1 - EPSILON (ten 0.1s make one).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

BURST_REQUESTS = 50  # the bucket holds this many requests' worth of tokens (at least one whole token)
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Budget:
    tokens: float
    capacity: float


def new_budget(max_fraction: float) -> Budget:
    capacity = max(1.0, max_fraction * BURST_REQUESTS)
    return Budget(tokens=capacity, capacity=capacity)


def offered(budget: Budget | None, max_fraction: float) -> Budget:
    """A request was offered a hedge: it earns its fraction of a token. The capacity follows the
    latest settings (a config reload may change `max_fraction`)."""
    fresh = new_budget(max_fraction)
    if budget is None:
        return fresh
    return Budget(tokens=min(fresh.capacity, budget.tokens + max_fraction), capacity=fresh.capacity)


def can_spend(budget: Budget) -> bool:
    return budget.tokens >= 1.0 - EPSILON


def spend(budget: Budget) -> Budget:
    return dataclasses.replace(budget, tokens=budget.tokens - 1.0)


@dataclass(frozen=True, slots=True)
class Wait:
    """Not due yet: look again at `at` if nothing else happens first."""

    at: float


@dataclass(frozen=True, slots=True)
class Hedge:
    """Start a second attempt now, with `excluded` (the slow attempt's provider) excluded."""

    excluded: str


@dataclass(frozen=True, slots=True)
class Skip:
    """Due, but the budget has no whole token: this request is not hedged."""


Decision = Wait | Hedge | Skip


def due_at(started: float, after_s: float) -> float:
    return started + after_s


def decide(*, started: float, after_s: float, provider: str, now: float, budget: Budget) -> tuple[Budget, Decision]:
    """The offered attempt (begun at `started`, on `provider`) has sent no content by `now`."""
    due = due_at(started, after_s)
    if now < due:
        return budget, Wait(due)
    if not can_spend(budget):
        return budget, Skip()
    return spend(budget), Hedge(excluded=provider)
