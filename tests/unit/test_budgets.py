"""Budgets, pure and in-process: period keys and resets on both sides of each boundary (a fake
clock), the check-and-charge decision, settlement and release, the refusal's message."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from services.gateway import budgets
from services.gateway.budget_store import LocalBudgets
from services.gateway.budgets import Budget


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_period_keys_and_resets_on_both_sides_of_midnight() -> None:
    before, after = at("2025-03-31T23:59:59.999"), at("2025-04-01T00:00:00")
    assert budgets.period_key("day", before) == "2025-03-31"
    assert budgets.period_key("day", after) == "2025-04-01"
    assert budgets.period_key("month", before) == "2025-03"
    assert budgets.period_key("month", after) == "2025-04"
    assert budgets.resets_at("day", before) == after
    assert budgets.resets_at("month", before) == after
    assert budgets.resets_at("day", after) == at("2025-04-02T00:00:00")
    assert budgets.resets_at("month", at("2025-12-15T12:00:00")) == at("2026-01-01T00:00:00")


def test_cost_and_which_budgets_a_key_has() -> None:
    assert budgets.cost(1500, 0.002) == 0.003
    found = budgets.budgets(1000, None, None, 2.5)
    assert found == (Budget("tokens", "day", 1000.0), Budget("cost", "month", 2.5))
    assert budgets.budgets(None, None, None, None) == ()


def test_exactly_the_budget_is_admitted_and_nothing_is_charged_on_a_refusal() -> None:
    clock = Clock(at("2025-03-31T12:00:00"))
    store = LocalBudgets(clock)
    found = budgets.budgets(100, None, None, None)

    async def run() -> list[bool]:
        out = []
        for _ in range(12):
            refusal = await store.check_and_charge(budgets.charges("key:k", found, clock(), 10, 0.0))
            out.append(refusal is None)
        return out

    assert asyncio.run(run()) == [True] * 10 + [False] * 2
    assert asyncio.run(store.spent(["bg:key:k:tokens:day:2025-03-31"])) == [100.0]


def test_a_spent_budget_resets_at_the_period_boundary() -> None:
    clock = Clock(at("2025-03-31T23:59:59"))
    store = LocalBudgets(clock)
    found = budgets.budgets(50, None, None, None)
    wanted = budgets.charges("key:k", found, clock(), 50, 0.0)
    assert asyncio.run(store.check_and_charge(wanted)) is None
    refusal = asyncio.run(store.check_and_charge(budgets.charges("key:k", found, clock(), 1, 0.0)))
    assert refusal is not None and refusal.spent == 50.0
    message = budgets.message(refusal, "k")
    assert "daily token budget of 50 tokens" in message
    assert "resets at 2025-04-01 00:00 UTC (in 1s)" in message
    clock.now = at("2025-04-01T00:00:00")  # the other side of the boundary: a new counter
    assert asyncio.run(store.check_and_charge(budgets.charges("key:k", found, clock(), 50, 0.0))) is None


def test_a_monthly_budget_does_not_reset_at_midnight() -> None:
    clock = Clock(at("2025-03-30T23:59:59"))
    store = LocalBudgets(clock)
    found = budgets.budgets(None, 10, None, None)
    assert asyncio.run(store.check_and_charge(budgets.charges("t", found, clock(), 10, 0.0))) is None
    clock.now = at("2025-03-31T00:00:01")
    refusal = asyncio.run(store.check_and_charge(budgets.charges("t", found, clock(), 1, 0.0)))
    assert refusal is not None and "monthly token budget" in budgets.message(refusal, None)
    assert "resets at 2025-04-01 00:00 UTC" in budgets.message(refusal, None)


def test_settlement_charges_the_difference_to_the_admitted_period() -> None:
    now = at("2025-03-31T23:59:59")
    found = budgets.budgets(1000, None, 5.0, None)
    admitted = budgets.charges("t", found, now, 100, 0.2)
    deltas = budgets.settlement(admitted, 100, 0.2, 130, 0.15)
    assert [(d.counter, d.amount) for d in deltas] == [
        ("bg:t:tokens:day:2025-03-31", 30.0), ("bg:t:cost:day:2025-03-31", 0.15 - 0.2)]
    released = budgets.settlement(admitted, 100, 0.2, 0, 0.0)
    assert [d.amount for d in released] == [-100.0, -0.2]


def test_a_cost_budget_admits_the_last_request_that_fits_despite_float_sums() -> None:
    found = (Budget("cost", "day", 0.3),)
    wanted = budgets.charges("t", found, 0.0, 1, 0.1)
    assert budgets.decide([0.1 + 0.1], wanted) is None
    assert budgets.decide([0.25], wanted) is not None
