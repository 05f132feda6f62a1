import pytest

from services.gateway.auth import ANONYMOUS, Principal
from services.gateway.gcra import PERIOD_MS, Limit, decide, format_reset, gcra, headers
from services.gateway.keys import KeyRecord
from services.gateway.rate_limit_store import LocalLimiter
from services.gateway.usage_limits import apply_max_tokens, completion_charges, estimate_prompt_tokens, rate_limits
from shared.config import LimitSettings, ModelLimits
from shared.errors import BadRequest

NOW = 1_700_000_000_000.0


def test_a_fresh_limit_admits_exactly_its_burst() -> None:
    tat = None
    admitted = 0
    for _ in range(30):
        decision, new_tat = gcra(tat, NOW, 10, 1)
        if decision.allowed:
            admitted += 1
            tat = new_tat
    assert admitted == 10


def test_units_come_back_one_interval_at_a_time() -> None:
    tat = None
    for _ in range(10):
        _, tat = gcra(tat, NOW, 10, 1)
    interval = PERIOD_MS / 10
    before, _ = gcra(tat, NOW + interval - 1, 10, 1)
    at, _ = gcra(tat, NOW + interval, 10, 1)
    assert not before.allowed and before.retry_ms == pytest.approx(1)
    assert at.allowed


def test_remaining_and_reset_count_down() -> None:
    first, tat = gcra(None, NOW, 3, 1)
    assert (first.remaining, first.reset_ms) == (2, PERIOD_MS / 3)
    second, tat = gcra(tat, NOW, 3, 1)
    third, tat = gcra(tat, NOW, 3, 1)
    fourth, _ = gcra(tat, NOW, 3, 1)
    assert (second.remaining, third.remaining) == (1, 0)
    assert third.reset_ms == pytest.approx(PERIOD_MS)
    assert not fourth.allowed and fourth.remaining == 0
    assert fourth.retry_ms == pytest.approx(PERIOD_MS / 3)


def test_a_cost_above_the_limit_never_fits() -> None:
    decision, tat = gcra(None, NOW, 100, 101)
    assert not decision.allowed and tat == NOW
    assert decision.retry_ms == PERIOD_MS


async def test_denial_by_one_limit_charges_none() -> None:
    limits = [Limit("a", "requests", 10, 1), Limit("b", "tokens", 100, 80)]
    allowed, decisions, _ = decide([None, NOW + 30_000], NOW, limits)
    assert not allowed
    assert [d.allowed for d in decisions] == [True, False]
    limiter = LocalLimiter(clock=lambda: NOW / 1000)
    await limiter.charge([Limit("b", "tokens", 100, 50)])
    assert not (await limiter.check(limits))[0]
    allowed, decisions = await limiter.check([limits[0]])
    assert allowed and decisions[0].remaining == 9  # the refused request spent nothing from "a"


def test_force_charges_past_the_limit_and_delays_later_requests() -> None:
    limits = [Limit("t", "tokens", 100, 150)]
    allowed, _, tats = decide([None], NOW, limits, force=True)
    assert allowed and tats[0] == NOW + 1.5 * PERIOD_MS
    later, _ = gcra(tats[0], NOW + 30_000, 100, 1)
    assert not later.allowed


async def test_local_limiter_with_an_injected_clock() -> None:
    now = [1_700_000_000.0]
    limiter = LocalLimiter(clock=lambda: now[0])
    limits = [Limit("k", "requests", 2, 1)]
    results = [(await limiter.check(limits))[0] for _ in range(3)]
    assert results == [True, True, False]
    now[0] += 30.0
    assert (await limiter.check(limits))[0]
    await limiter.charge([Limit("k", "requests", 2, 5)])
    now[0] += 60.0
    assert not (await limiter.check(limits))[0]


def test_headers_in_openai_style_from_the_tightest_limit() -> None:
    limits = [Limit("a", "requests", 10, 1), Limit("b", "requests", 3, 1), Limit("c", "tokens", 1000, 200)]
    _, decisions, _ = decide([None, None, None], NOW, limits)
    out = headers(limits, decisions)
    assert out["x-ratelimit-limit-requests"] == "3"
    assert out["x-ratelimit-remaining-requests"] == "2"
    assert out["x-ratelimit-reset-requests"] == "20s"
    assert out["x-ratelimit-limit-tokens"] == "1000"
    assert out["x-ratelimit-remaining-tokens"] == "800"
    assert out["x-ratelimit-reset-tokens"] == "12s"


@pytest.mark.parametrize(("ms", "text"), [(0, "0ms"), (19.2, "20ms"), (1000, "1s"), (59_001, "1m0s"),
                                          (360_000, "6m0s"), (61_500, "1m2s")])
def test_reset_format(ms: float, text: str) -> None:
    assert format_reset(ms) == text


SETTINGS = LimitSettings(models={"big": ModelLimits(rpm=5, tpm=1000, max_tokens=100)})


def test_which_limits_apply() -> None:
    keyed = Principal(tenant="key:abc", key_id="abc", record=KeyRecord(id="abc", hash="", rpm=60, tpm=10_000))
    found = rate_limits(keyed, "big", SETTINGS, 25)
    assert [(lim.unit, lim.per_minute, lim.cost) for lim in found] == [
        ("requests", 60, 1), ("tokens", 10_000, 25), ("requests", 5, 1), ("tokens", 1000, 25)]
    assert len({lim.key for lim in found}) == 4
    assert rate_limits(ANONYMOUS, "small", SETTINGS, 25) == []
    anonymous_big = rate_limits(ANONYMOUS, "big", SETTINGS, 25)
    assert len(anonymous_big) == 2
    assert rate_limits(keyed, "big", SETTINGS, 1)[2].key != anonymous_big[0].key


def test_completion_is_charged_after_with_the_missed_prompt() -> None:
    limits = [Limit("r", "requests", 5, 1), Limit("t", "tokens", 1000, 25)]
    charged = completion_charges(limits, estimated_prompt=25, prompt_tokens=40, completion_tokens=16)
    assert [(lim.key, lim.cost) for lim in charged] == [("t", 31)]
    assert completion_charges(limits, 25, 10, 0) == []
    assert estimate_prompt_tokens(b"x" * 400) == 100
    assert estimate_prompt_tokens(b"") == 1


def test_max_tokens_cap() -> None:
    body: dict[str, object] = {"messages": []}
    apply_max_tokens("chat", "big", body, SETTINGS)
    assert body["max_tokens"] == 100
    fine = {"max_completion_tokens": 100}
    apply_max_tokens("chat", "big", fine, SETTINGS)
    assert fine == {"max_completion_tokens": 100}
    with pytest.raises(BadRequest) as caught:
        apply_max_tokens("completion", "big", {"max_tokens": 101}, SETTINGS)
    assert caught.value.param == "max_tokens"
    untouched: dict[str, object] = {}
    apply_max_tokens("chat", "other", untouched, SETTINGS)
    apply_max_tokens("embedding", "big", untouched, SETTINGS)
    assert untouched == {}
