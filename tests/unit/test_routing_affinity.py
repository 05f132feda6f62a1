"""prefix_affinity (services/router/affinity.py) and the affinity key (shared/prefix.py):
rendezvous hashing moves only a lost provider's share, load bounds the affinity, replicas agree."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from services.router.affinity import AFFINITY_LOAD_FACTOR, AFFINITY_SLACK, FREE_SLOT, rank_by_affinity, rendezvous
from services.router.strategies import Candidate
from shared.prefix import prefix_key

NAMES = [f"p{i}" for i in range(6)]
keys = st.text(min_size=1, max_size=12)
pools = st.lists(st.sampled_from(NAMES), min_size=2, max_size=6, unique=True)


def pool(names: list[str], **load: float) -> list[Candidate]:
    return [Candidate(n, busy=load.get(n), capacity=4) for n in names]


@given(keys, pools, st.data())
def test_losing_a_provider_moves_only_its_own_keys(key: str, names: list[str], data: st.DataObject) -> None:
    lost = data.draw(st.sampled_from(names))
    before = [c.provider for c in rendezvous(key, pool(names))]
    after = [c.provider for c in rendezvous(key, pool([n for n in names if n != lost]))]
    assert after == [n for n in before if n != lost]  # the survivors keep their order, first included


@given(keys, pools, st.lists(st.one_of(st.none(), st.integers(0, 20)), min_size=6, max_size=6))
def test_the_ranking_is_a_permutation_of_the_candidates(key: str, names: list[str], busy: list[int | None]) -> None:
    candidates = [Candidate(n, busy=None if b is None else float(b), capacity=4)
                  for n, b in zip(names, busy[:len(names)], strict=True)]
    assert sorted(c.provider for c in rank_by_affinity(key, candidates)) == sorted(names)


def test_keys_spread_over_the_pool_and_each_sticks() -> None:
    firsts = Counter(rank_by_affinity(f"conversation-{i}", pool(NAMES[:4]))[0].provider for i in range(400))
    assert set(firsts) == set(NAMES[:4]) and min(firsts.values()) > 60
    assert all(rank_by_affinity("k", pool(NAMES[:4]))[0] == rank_by_affinity("k", pool(NAMES[:4]))[0]
               for _ in range(3))


def test_the_key_stays_while_its_provider_has_a_free_slot() -> None:
    names = NAMES[:3]
    preferred = rendezvous("k", pool(names))[0].provider
    # pressure = (busy + 1) / 4; the least busy is idle (0.25), so 2 x 0.25 + 0.25 = 0.75 is below
    # the free-slot bound: 3 of 4 slots busy still leaves this request a slot, and it stays.
    assert FREE_SLOT == 1.0 and AFFINITY_LOAD_FACTOR == 2.0 and AFFINITY_SLACK == 0.25
    last_slot = {n: 0.0 for n in names} | {preferred: 3.0}  # (3 + 1) / 4 = 1.0: stays
    assert rank_by_affinity("k", pool(names, **last_slot))[0].provider == preferred


def test_balance_wins_when_the_preferred_provider_would_queue_the_request() -> None:
    names = NAMES[:3]
    preferred, second = (c.provider for c in rendezvous("k", pool(names))[:2])
    full = {n: 0.0 for n in names} | {preferred: 4.0}  # (4 + 1) / 4 = 1.25 > 1.0: spills to its second choice
    ranked = [c.provider for c in rank_by_affinity("k", pool(names, **full))]
    assert ranked[0] == second and ranked[1] == preferred


def test_under_general_load_the_relative_bound_applies() -> None:
    names = NAMES[:3]
    preferred, second = (c.provider for c in rendezvous("k", pool(names))[:2])
    # Every provider past its slots (least: (4 + 1) / 4 = 1.25, bound 2 x 1.25 + 0.25 = 2.75).
    within = {n: 4.0 for n in names} | {preferred: 9.0}  # (9 + 1) / 4 = 2.5: stays
    assert rank_by_affinity("k", pool(names, **within))[0].provider == preferred
    beyond = {n: 4.0 for n in names} | {preferred: 11.0}  # (11 + 1) / 4 = 3.0 > 2.75: spills
    assert rank_by_affinity("k", pool(names, **beyond))[0].provider == second


def test_a_provider_without_a_load_report_goes_last() -> None:
    names = NAMES[:3]
    preferred = rendezvous("k", pool(names))[0].provider
    load = {n: 1.0 for n in names if n != preferred}
    assert rank_by_affinity("k", pool(names, **load))[-1].provider == preferred


def test_the_key_follows_the_session_the_user_or_the_leading_messages() -> None:
    system = {"role": "system", "content": "be brief"}
    turn1 = {"messages": [system, {"role": "user", "content": "a"}]}
    turn2 = {"messages": [system, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                          {"role": "user", "content": "c"}]}
    other = {"messages": [system, {"role": "user", "content": "z"}]}
    assert prefix_key(turn1) == prefix_key(turn2) != prefix_key(other)
    assert prefix_key({**turn1, "user": "u1"}) == prefix_key({**other, "user": "u1"})
    assert prefix_key(turn1, session="s") == prefix_key(other, session="s") != prefix_key(turn1)
    assert prefix_key({"prompt": "x" * 2000 + "a"}) == prefix_key({"prompt": "x" * 2000 + "b"})
    assert prefix_key({"input": "embed"}) is None
