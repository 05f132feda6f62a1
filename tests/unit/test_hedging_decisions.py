"""Hedging's decisions as plain function calls: the caller's (shared/hedging.py) on a fake clock,
both sides of the time boundary, and the budget's cap as a property; the router's offer
(services/router/hedging.py) and a hedge attempt's plan without paid providers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.router import hedging as router_hedging
from services.router.decision import decide
from services.router.load import LoadView
from services.router.stats import UsageStats
from services.router.strategies import Balancer
from shared import hedging
from shared.config import Config, HedgingSpec, ModelMappingsFile, ProviderSpec, RuntimeFile
from shared.config.base import ConfigError
from shared.messages import HedgeOffer, InferenceRequest, Outcome

T0 = 1_000.0
EPS = 0.002  # a timer may wake this much early


def decide_at(now: float, budget: hedging.Budget | None = None, after_s: float = 0.5) -> hedging.Decision:
    _, decision = hedging.decide(started=T0, after_s=after_s, provider="slow", now=now,
                                 budget=budget or hedging.new_budget(0.1))
    return decision


# -- when ------------------------------------------------------------------------------------------
def test_no_hedge_before_the_threshold_and_one_at_it() -> None:
    assert decide_at(T0 + 0.5 - EPS) == hedging.Wait(T0 + 0.5)
    assert decide_at(T0 + 0.5) == hedging.Hedge(excluded="slow")
    assert decide_at(T0 + 0.5 + EPS) == hedging.Hedge(excluded="slow")


def test_the_threshold_counts_from_the_attempt_start_whatever_the_settings() -> None:
    assert isinstance(decide_at(T0 + 2.0 - EPS, after_s=2.0), hedging.Wait)
    assert isinstance(decide_at(T0 + 2.0, after_s=2.0), hedging.Hedge)


def test_waiting_costs_nothing_and_a_hedge_one_token() -> None:
    budget = hedging.new_budget(0.1)
    same, _ = hedging.decide(started=T0, after_s=0.5, provider="p", now=T0 + 0.1, budget=budget)
    assert same == budget
    spent, _ = hedging.decide(started=T0, after_s=0.5, provider="p", now=T0 + 0.5, budget=budget)
    assert spent.tokens == budget.tokens - 1


def test_due_without_a_whole_token_is_skipped_and_spends_nothing() -> None:
    empty = hedging.Budget(tokens=0.95, capacity=5)
    budget, decision = hedging.decide(started=T0, after_s=0.5, provider="p", now=T0 + 0.5, budget=empty)
    assert decision == hedging.Skip() and budget == empty
    assert isinstance(decide_at(T0 + 0.5 - EPS, empty), hedging.Wait)  # before the boundary, still waiting


# -- how many ------------------------------------------------------------------------------------
def test_the_bucket_starts_full_and_refills_per_offered_request() -> None:
    budget = hedging.new_budget(0.1)
    assert budget.capacity == 5 and budget.tokens == 5
    for _ in range(5):
        assert hedging.can_spend(budget)
        budget = hedging.spend(budget)
    assert not hedging.can_spend(budget)
    for _ in range(9):
        budget = hedging.offered(budget, 0.1)
    assert not hedging.can_spend(budget)
    budget = hedging.offered(budget, 0.1)  # ten 0.1s make a whole token, rounding or not
    assert hedging.can_spend(budget)
    assert hedging.new_budget(0.001).capacity == 1  # never less than one hedge's worth


def test_the_bucket_never_holds_more_than_its_capacity() -> None:
    budget = hedging.new_budget(0.2)
    for _ in range(1000):
        budget = hedging.offered(budget, 0.2)
    assert budget.tokens == budget.capacity == 10


@given(fraction=st.sampled_from([0.01, 0.05, 0.1, 0.25, 0.5, 1.0]),
       slow=st.lists(st.booleans(), min_size=1, max_size=400))
def test_hedges_never_exceed_their_cap_in_any_window(fraction: float, slow: list[bool]) -> None:
    """Each request is offered a hedge and is slow (due) or not: over any run of consecutive
    requests, hedges <= capacity + fraction x requests, even when every request is slow."""
    budget: hedging.Budget | None = None
    hedged: list[int] = []
    for is_slow in slow:
        budget = hedging.offered(budget, fraction)
        now = T0 + (1.0 if is_slow else 0.1)
        budget, decision = hedging.decide(started=T0, after_s=0.5, provider="p", now=now, budget=budget)
        hedged.append(1 if isinstance(decision, hedging.Hedge) else 0)
        assert not is_slow or not isinstance(decision, hedging.Wait)
        assert is_slow or isinstance(decision, hedging.Wait)
    capacity = hedging.new_budget(fraction).capacity
    prefix = [0]
    for h in hedged:
        prefix.append(prefix[-1] + h)
    for i in range(len(hedged)):
        for j in range(i + 1, len(hedged) + 1):
            assert prefix[j] - prefix[i] <= capacity + fraction * (j - i) + 1e-6


def test_an_outage_adds_at_most_the_fraction_after_one_burst() -> None:
    budget: hedging.Budget | None = None
    hedges = 0
    for _ in range(1000):  # every attempt slow
        budget = hedging.offered(budget, 0.1)
        budget, decision = hedging.decide(started=T0, after_s=0.5, provider="p", now=T0 + 5, budget=budget)
        hedges += isinstance(decision, hedging.Hedge)
    assert hedges <= 5 + 100


# -- the router's offer ----------------------------------------------------------------------------
FREE_A = {"type": "vllm", "base_url": "http://a", "models": {"m": {}}}
FREE_B = {"type": "vllm", "base_url": "http://b", "models": {"m": {}}}
PAID = {"type": "openai", "base_url": "https://c", "models": {"m": {"cost_per_1k_tokens": 0.5}}}


def config(hedge: dict[str, Any] | None, providers: dict[str, Any] | None = None) -> Config:
    providers = providers or {"a": FREE_A, "b": FREE_B, "paid": PAID}
    mappings: dict[str, Any] = {"load_balancing": {"m": {"providers": list(providers)}}}
    if hedge is not None:
        mappings["hedging"] = {"m": hedge}
    return Config(directory=Path("."), providers={k: ProviderSpec.model_validate(v) for k, v in providers.items()},
                  mappings=ModelMappingsFile.model_validate(mappings), runtime=RuntimeFile())


def request(**fields: Any) -> InferenceRequest:
    return InferenceRequest(**{"id": "r", "attempt": "a1", "kind": "chat", "model": "m", "body": {}, "stream": True,
                               **fields})


def offer(cfg: Config, provider: str = "a", others: tuple[str, ...] = ("b", "paid"), usage: UsageStats | None = None,
          **fields: Any) -> HedgeOffer | None:
    return router_hedging.offer(cfg, request(**fields), provider=provider, model="m",
                                others=[(o, "m") for o in others], usage=usage or UsageStats(), now=10.0)


def test_a_fixed_threshold_is_offered_with_the_budget_settings() -> None:
    made = offer(config({"after_ms": 400, "max_fraction": 0.05}))
    assert made == HedgeOffer(attempt="a1", provider="a", after_s=0.4, max_fraction=0.05, group="m")


def test_no_offer_without_settings_for_a_hedge_or_with_nowhere_to_go() -> None:
    assert offer(config(None)) is None
    assert offer(config({"after_ms": 400}), hedge=True) is None
    assert offer(config({"after_ms": 400}), others=("paid",)) is None  # the only other one has a cost
    assert offer(config({"after_ms": 400, "allow_paid": True}), others=("paid",)) is not None


def test_paid_providers_are_not_hedged_from_unless_allowed() -> None:
    assert offer(config({"after_ms": 400}), provider="paid", others=("a", "b")) is None
    assert offer(config({"after_ms": 400, "allow_paid": True}), provider="paid", others=("a",)) is not None


def test_settings_are_found_by_the_model_the_client_asked_for() -> None:
    made = router_hedging.offer(config({"after_ms": 400}), request(model="cap", requested_model="m"), provider="a",
                                model="cap", others=[("b", "m")], usage=UsageStats(), now=0.0)
    assert made is not None and made.group == "m"


def ok(provider: str, ttft_s: float, at: float = 5.0) -> Outcome:
    return Outcome(provider=provider, model="m", request_id="r", attempt="x", worker_id="w", kind="ok",
                   latency_s=ttft_s + 1, ttft_s=ttft_s, at=at)


def test_auto_waits_for_enough_samples_then_uses_the_pools_p95() -> None:
    cfg = config({"after_ms": "auto"})
    usage = UsageStats()
    for i in range(router_hedging.AUTO_MIN_SAMPLES - 1):
        usage.record(ok("a", 0.1 + i / 100), 5.0)
    assert offer(cfg, usage=usage) is None
    for i in range(10):
        usage.record(ok("b", 0.2 + i / 100), 5.0)  # the pool's other providers count too
    usage.record(ok("elsewhere", 0.01), 5.0)  # a provider outside the plan does not
    made = offer(cfg, usage=usage)
    ttfts = sorted([0.1 + i / 100 for i in range(9)] + [0.2 + i / 100 for i in range(10)])
    assert made is not None and made.after_s == pytest.approx(2 * ttfts[18])  # nearest rank: ceil(0.95 x 19) = 19th


def test_auto_is_not_raised_by_the_stalling_providers_own_stalls() -> None:
    usage = UsageStats()
    for i in range(20):
        usage.record(ok("a", 2.0 if i % 5 == 0 else 0.1), 5.0)  # a stalls one time in five
        usage.record(ok("b", 0.1), 5.0)
        usage.record(ok("paid", 0.1), 5.0)
    made = offer(config({"after_ms": "auto"}), usage=usage)
    assert made is not None and made.after_s == pytest.approx(4.0)  # 4 of 60 samples stall: p95 is a stall
    for _ in range(40):
        usage.record(ok("b", 0.1), 5.0)
    made = offer(config({"after_ms": "auto"}), usage=usage)
    assert made is not None and made.after_s == pytest.approx(0.2)  # the pool's p95 is healthy


def test_auto_never_hedges_under_the_floor() -> None:
    usage = UsageStats()
    for _ in range(20):
        usage.record(ok("a", 0.001), 5.0)
    made = offer(config({"after_ms": "auto"}), usage=usage)
    assert made is not None and made.after_s == router_hedging.AUTO_FLOOR_S


def test_a_hedge_attempt_is_planned_without_paid_providers_unless_allowed() -> None:
    def candidates(cfg: Config, **fields: Any) -> tuple[str, ...]:
        return decide(cfg, request(**fields), states={}, load=LoadView(), usage=UsageStats(), balancer=Balancer(),
                      admit_draw=0.0, now=0.0).candidates

    assert set(candidates(config({"after_ms": 400}), hedge=True, excluded=("a",))) == {"b"}
    assert set(candidates(config({"after_ms": 400}), excluded=("a",))) == {"b", "paid"}  # a retry may pay
    assert set(candidates(config({"after_ms": 400, "allow_paid": True}), hedge=True, excluded=("a",))) == {"b", "paid"}


def test_settings_are_checked_when_loaded() -> None:
    assert HedgingSpec().after_ms == "auto" and HedgingSpec().max_fraction == 0.1
    for bad in ({"after_ms": 0}, {"after_ms": "soon"}, {"max_fraction": 0}, {"max_fraction": 1.5}, {"after": 3}):
        with pytest.raises((ValueError, ConfigError)):
            HedgingSpec.model_validate(bad)
