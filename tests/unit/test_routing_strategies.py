"""Load-balancing strategies: examples, and the fairness properties with hypothesis."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from services.router.strategies import USAGE_REFRESH_EVERY, Balancer, Candidate, rank, usage_scores


def picks(strategy: str, candidates: list[Candidate], n: int, balancer: Balancer | None = None) -> Counter[str]:
    balancer = balancer or Balancer()
    return Counter(rank(strategy, balancer, "g", candidates)[0].provider for _ in range(n))  # type: ignore[arg-type]


def test_round_robin_is_a_strict_rotation() -> None:
    balancer = Balancer()
    cands = [Candidate("a"), Candidate("b"), Candidate("c")]
    order = [rank("round_robin", balancer, "g", cands)[0].provider for _ in range(6)]
    assert order == ["a", "b", "c", "a", "b", "c"]


def test_round_robin_lists_every_candidate_next_pick_second() -> None:
    ranked = rank("round_robin", Balancer(), "g", [Candidate("a"), Candidate("b"), Candidate("c")])
    assert [c.provider for c in ranked] == ["a", "b", "c"]


def test_groups_rotate_independently() -> None:
    balancer = Balancer()
    cands = [Candidate("a"), Candidate("b")]
    assert rank("round_robin", balancer, "g1", cands)[0].provider == "a"
    assert rank("round_robin", balancer, "g2", cands)[0].provider == "a"
    assert rank("round_robin", balancer, "g1", cands)[0].provider == "b"


def test_degraded_gets_half_the_weight() -> None:
    counts = picks("round_robin", [Candidate("a"), Candidate("b", degraded=True)], 300)
    assert counts == {"a": 200, "b": 100}


def test_zero_weight_is_a_last_resort() -> None:
    ranked = rank("round_robin", Balancer(), "g", [Candidate("a", weight=0.0), Candidate("b")])
    assert [c.provider for c in ranked] == ["b", "a"]


def test_least_loaded_uses_utilisation_and_puts_unknown_last() -> None:
    cands = [Candidate("small", busy=1, capacity=1), Candidate("big", busy=4, capacity=32), Candidate("silent")]
    assert [c.provider for c in rank("least_loaded", Balancer(), "g", cands)] == ["big", "small", "silent"]


def test_least_loaded_rotates_among_equally_loaded() -> None:
    counts = picks("least_loaded", [Candidate("a", busy=0, capacity=4), Candidate("b", busy=0, capacity=4)], 10)
    assert counts == {"a": 5, "b": 5}


def test_least_loaded_prefers_healthy_over_equally_loaded_degraded() -> None:
    cands = [Candidate("d", busy=1, capacity=4, degraded=True), Candidate("h", busy=1, capacity=4)]
    assert rank("least_loaded", Balancer(), "g", cands)[0].provider == "h"


def test_usage_score_weights_latency_success_and_cost() -> None:
    scores = usage_scores([Candidate("fast", latency_s=0.1, success_rate=1.0, cost=1.0),
                           Candidate("slow", latency_s=0.4, success_rate=0.5, cost=2.0)])
    assert scores["fast"] == 1.0
    assert abs(scores["slow"] - (0.4 * 0.25 + 0.4 * 0.5 + 0.2 * 0.5)) < 1e-9


def test_usage_score_treats_unknown_as_best_so_new_providers_get_tried() -> None:
    scores = usage_scores([Candidate("known", latency_s=0.2, success_rate=0.9), Candidate("new")])
    assert scores["new"] > scores["known"]


def test_usage_based_refreshes_its_scores_every_ten_decisions() -> None:
    balancer = Balancer()
    good, bad = Candidate("a", latency_s=0.1, success_rate=1.0), Candidate("b", latency_s=1.0, success_rate=0.2)
    assert rank("usage_based", balancer, "g", [good, bad])[0].provider == "a"
    flipped = [Candidate("a", latency_s=1.0, success_rate=0.2), Candidate("b", latency_s=0.1, success_rate=1.0)]
    for _ in range(USAGE_REFRESH_EVERY - 1):  # decisions 2..10 still use the first snapshot
        assert rank("usage_based", balancer, "g", flipped)[0].provider == "a"
    assert rank("usage_based", balancer, "g", flipped)[0].provider == "b"  # decision 11 recomputes


def test_cost_optimized_takes_quality_within_ten_percent_of_the_cheapest() -> None:
    cheap = Candidate("cheap", cost=1.0, quality=1)
    assert rank("cost_optimized", Balancer(), "g", [cheap, Candidate("near", cost=1.09, quality=3)])[0].provider \
        == "near"
    assert rank("cost_optimized", Balancer(), "g", [cheap, Candidate("far", cost=1.11, quality=3)])[0].provider \
        == "cheap"


def test_cost_optimized_ranks_the_rest_by_cost() -> None:
    cands = [Candidate("c3", cost=3.0), Candidate("c1", cost=1.0), Candidate("c2", cost=2.0)]
    assert [c.provider for c in rank("cost_optimized", Balancer(), "g", cands)] == ["c1", "c2", "c3"]


def test_quality_first_priority_then_rank_and_degraded_last() -> None:
    cands = [Candidate("low", quality=1), Candidate("high", quality=5), Candidate("listed", quality=0),
             Candidate("sick", quality=9, degraded=True)]
    ranked = rank("quality_first", Balancer(), "g", cands, priority_order=["listed"])
    assert [c.provider for c in ranked] == ["listed", "high", "low", "sick"]


names = st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=8, unique=True)


@settings(max_examples=200, deadline=None)
@given(names, st.integers(min_value=1, max_value=400))
def test_round_robin_is_fair_within_one_over_any_n(providers: list[str], n: int) -> None:
    counts = picks("round_robin", [Candidate(p) for p in providers], n)
    assert max(counts[p] for p in providers) - min(counts[p] for p in providers) <= 1


@settings(max_examples=200, deadline=None)
@given(names, st.integers(min_value=1, max_value=300), st.integers(min_value=0, max_value=50))
def test_round_robin_is_fair_within_one_over_any_window(providers: list[str], n: int, skip: int) -> None:
    balancer = Balancer()
    cands = [Candidate(p) for p in providers]
    picks("round_robin", cands, skip, balancer)
    counts = picks("round_robin", cands, n, balancer)
    assert max(counts[p] for p in providers) - min(counts[p] for p in providers) <= 1


@settings(max_examples=120, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=30) | st.floats(min_value=0.01, max_value=10), min_size=1,
                max_size=8), st.integers(1, 500))
def test_weights_are_honoured_within_the_stated_tolerance(weights: list[float], n: int) -> None:
    """After any N decisions a provider is never 1 or more above its share N * w / W (provable:
    smooth WRR's current weight stays above -W) and less than 2 below it (observed <= 1.12)."""
    cands = [Candidate(f"p{i}", weight=float(w)) for i, w in enumerate(weights)]
    balancer = Balancer()
    counts: Counter[str] = Counter()
    total = sum(weights)
    for done in range(1, n + 1):
        counts[rank("round_robin", balancer, "g", cands)[0].provider] += 1
        for i, w in enumerate(weights):
            share = done * w / total
            assert counts[f"p{i}"] - share < 1 + 1e-9
            assert share - counts[f"p{i}"] < 2


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["round_robin", "least_loaded", "usage_based", "cost_optimized", "quality_first"]),
       st.lists(st.builds(Candidate, provider=st.sampled_from("abcdef"), weight=st.floats(0, 5),
                          degraded=st.booleans(), cost=st.floats(0, 10), quality=st.integers(0, 5),
                          busy=st.none() | st.floats(0, 50), capacity=st.integers(1, 32),
                          latency_s=st.none() | st.floats(0, 10), success_rate=st.none() | st.floats(0, 1)),
                min_size=1, max_size=6, unique_by=lambda c: c.provider))
def test_every_strategy_returns_each_candidate_exactly_once(strategy: str, cands: list[Candidate]) -> None:
    ranked = rank(strategy, Balancer(), "g", cands)  # type: ignore[arg-type]
    assert sorted(c.provider for c in ranked) == sorted(c.provider for c in cands)
