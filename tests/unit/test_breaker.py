"""The circuit breaker as plain function calls on a fake clock: both sides of every boundary."""

from __future__ import annotations

import pytest

from services.health.breaker import (
    TRANSITIONS,
    Breaker,
    Event,
    Failed,
    IllegalTransition,
    ProbeFailed,
    ProbePassed,
    RampStepped,
    RateLimited,
    StartTrial,
    Succeeded,
    Tick,
    Transitioned,
    TrialFailed,
    TrialPassed,
    from_state,
    next_state,
    open_period,
    step,
    to_state,
)
from services.health.latency import Latency
from shared.config import HealthCheckSpec

S = HealthCheckSpec()  # the spec's numbers: 3 failures in 60 s, open 300 s, ramp 0.1 → 1
T0 = 1_000_000.0


def run(b: Breaker, *events: Event, settings: HealthCheckSpec = S) -> tuple[Breaker, list[object]]:
    effects: list[object] = []
    for event in events:
        b, out = step(b, event, settings)
        effects.extend(out)
    return b, effects


def transitions(effects: list[object]) -> list[tuple[str, str, str]]:
    return [(e.source, e.target, e.trigger) for e in effects if isinstance(e, Transitioned)]


def trials(effects: list[object]) -> list[StartTrial]:
    return [e for e in effects if isinstance(e, StartTrial)]


def tripped(at: float = T0, settings: HealthCheckSpec = S) -> Breaker:
    b, _ = run(Breaker(since=T0 - 100), *(Failed(at - 2 + i, "HTTP 500") for i in range(3)), settings=settings)
    assert b.state == "unavailable"
    return b


def in_cooldown(settings: HealthCheckSpec = S) -> Breaker:
    b = tripped(settings=settings)
    assert b.open_until is not None
    b, effects = run(b, Tick(b.open_until), settings=settings)
    (trial,) = trials(effects)
    b, _ = run(b, TrialPassed(b.open_until + 1, trial.trial), settings=settings)
    assert b.state == "cooldown"
    return b


# -- failures open the circuit -----------------------------------------------------------------
def test_three_failures_within_the_window_open_the_circuit_for_the_open_period() -> None:
    b, effects = run(Breaker(), Failed(T0, "a"), Failed(T0 + 30, "b"), Failed(T0 + 59.999, "c"))
    assert b.state == "unavailable" and b.admit_fraction == 0.0 and not to_state("p", b).routable
    assert b.open_until == pytest.approx(T0 + 59.999 + 300)
    assert b.opened == 1 and b.seq == 1 and b.since == T0 + 59.999 and b.previous == "active"
    assert transitions(effects) == [("active", "unavailable", "tripped")]
    assert "3 upstream failures" in b.reason and "c" in b.reason


def test_failures_spread_over_more_than_the_window_do_not() -> None:
    b, effects = run(Breaker(), Failed(T0, "a"), Failed(T0 + 30, "b"), Failed(T0 + 60, "c"))
    assert b.state == "active" and effects == [] and b.seq == 0
    assert b.failures == (T0 + 30, T0 + 60)


def test_two_failures_are_not_enough() -> None:
    b, effects = run(Breaker(), Failed(T0, "a"), Failed(T0 + 1, "b"))
    assert b.state == "active" and effects == []


def test_degraded_trips_too() -> None:
    b, effects = run(Breaker(state="degraded"), *(Failed(T0 + i, "x") for i in range(3)))
    assert transitions(effects) == [("degraded", "unavailable", "tripped")] and b.opened == 1


def test_a_configured_threshold_and_window_apply() -> None:
    settings = HealthCheckSpec(failure_threshold=1, failure_window_s=5)
    b, _ = run(Breaker(), Failed(T0, "x"), settings=settings)
    assert b.state == "unavailable"


def test_a_failed_probe_cycle_opens_at_once() -> None:
    b, effects = run(Breaker(), ProbeFailed(T0, "probe failed: ConnectError"))
    assert transitions(effects) == [("active", "unavailable", "probe_failed")]
    assert b.open_until == T0 + 300 and b.reason == "probe failed: ConnectError"


def test_stragglers_while_open_change_nothing() -> None:
    b = tripped()
    after, effects = run(b, Failed(T0 + 1, "late"), ProbeFailed(T0 + 2, "down"), Succeeded(T0 + 3, 0.1),
                         ProbePassed(T0 + 4, 0.01))
    assert effects == [] and after.state == "unavailable" and after.open_until == b.open_until
    assert after.seq == b.seq


# -- the open period and the trial --------------------------------------------------------------
def test_one_trial_starts_exactly_when_the_open_period_ends() -> None:
    b = tripped()
    assert b.open_until == T0 + 300
    b, effects = run(b, Tick(T0 + 299.999))
    assert effects == [] and b.state == "unavailable"
    b, effects = run(b, Tick(T0 + 300), Tick(T0 + 300.5), Tick(T0 + 301))
    (trial,) = trials(effects)
    assert trial.trial == 1 and trial.deadline == T0 + 300 + S.trial_timeout_s
    assert b.state == "unavailable" and b.trial_deadline == trial.deadline


def test_a_passing_trial_moves_to_cooldown_at_the_first_ramp_step() -> None:
    b = tripped()
    b, effects = run(b, Tick(T0 + 300), TrialPassed(T0 + 301, 1))
    assert transitions(effects) == [("unavailable", "cooldown", "trial_passed")]
    assert b.state == "cooldown" and b.admit_fraction == 0.1 and b.open_until is None
    assert to_state("p", b).routable


def test_a_failing_trial_reopens_for_twice_as_long() -> None:
    b = tripped()
    b, effects = run(b, Tick(T0 + 300), TrialFailed(T0 + 301, 1, "HTTP 500"))
    assert transitions(effects) == [("unavailable", "unavailable", "trial_failed")]
    assert b.open_until == T0 + 301 + 600 and b.opened == 2 and b.trial_deadline is None
    assert b.since == T0  # still down since the circuit first opened
    b, effects = run(b, Tick(T0 + 900.999))
    assert effects == []
    b, effects = run(b, Tick(T0 + 901))
    assert [t.trial for t in trials(effects)] == [2]


def test_a_hung_trial_fails_at_its_deadline_and_its_late_answer_is_ignored() -> None:
    b = tripped()
    b, effects = run(b, Tick(T0 + 300))
    deadline = trials(effects)[0].deadline
    b, effects = run(b, Tick(deadline - 0.001))
    assert effects == [] and b.trial_deadline == deadline
    b, effects = run(b, Tick(deadline))
    assert transitions(effects) == [("unavailable", "unavailable", "trial_failed")]
    assert "timed out" in b.reason and b.open_until == deadline + 600
    late, effects = run(b, TrialPassed(deadline + 1, 1))
    assert effects == [] and late == b


def test_a_result_for_another_trial_is_ignored() -> None:
    b, _ = run(tripped(), Tick(T0 + 300))
    same, effects = run(b, TrialPassed(T0 + 301, 7), TrialFailed(T0 + 301, 0, "x"))
    assert effects == [] and same == b


def test_open_periods_grow_and_are_capped() -> None:
    assert [open_period(n, S) for n in (1, 2, 3, 4, 5, 6)] == [300, 600, 1200, 2400, 3600, 3600]
    flat = HealthCheckSpec(open_growth=1)
    assert open_period(5, flat) == 300


# -- cooldown and the ramp ----------------------------------------------------------------------
def test_successes_ramp_admission_up_to_active() -> None:
    b = in_cooldown()
    seen = [b.admit_fraction]
    effects: list[object] = []
    for i in range(S.ramp_successes * len(S.ramp)):
        b, out = run(b, Succeeded(T0 + 400 + i, 0.1))
        effects.extend(out)
        if b.admit_fraction != seen[-1]:
            seen.append(b.admit_fraction)
    assert seen == [0.1, 0.25, 0.5, 1.0]
    assert [e.admit_fraction for e in effects if isinstance(e, RampStepped)] == [0.25, 0.5, 1.0]
    assert transitions(effects) == [("cooldown", "active", "ramp_done")]
    assert b.state == "active" and b.opened == 0 and b.admit_fraction == 1.0


def test_one_success_short_of_a_step_keeps_the_fraction() -> None:
    b = in_cooldown()
    seq = b.seq
    b, effects = run(b, *(Succeeded(T0 + 400 + i, 0.1) for i in range(S.ramp_successes - 1)))
    assert b.admit_fraction == 0.1 and effects == [] and b.seq == seq
    b, effects = run(b, Succeeded(T0 + 500, 0.1))
    assert b.admit_fraction == 0.25 and b.seq == seq + 1


def test_a_failure_in_cooldown_reopens_for_longer() -> None:
    b = in_cooldown()
    b, effects = run(b, Failed(T0 + 400, "HTTP 502"))
    assert transitions(effects) == [("cooldown", "unavailable", "failed")]
    assert b.opened == 2 and b.open_until == T0 + 400 + 600 and b.admit_fraction == 0.0


def test_a_failed_probe_in_cooldown_reopens() -> None:
    b, effects = run(in_cooldown(), ProbeFailed(T0 + 400, "probe answered HTTP 503"))
    assert transitions(effects) == [("cooldown", "unavailable", "probe_failed")] and b.opened == 2


def test_reaching_active_resets_the_growth() -> None:
    b = in_cooldown()
    b, _ = run(b, *(Succeeded(T0 + 400 + i, 0.1) for i in range(S.ramp_successes * len(S.ramp))))
    b, _ = run(b, *(Failed(T0 + 1000 + i, "x") for i in range(3)))
    assert b.opened == 1 and b.open_until == T0 + 1002 + 300


# -- 429 ----------------------------------------------------------------------------------------
def test_a_429_removes_the_provider_for_its_retry_after_only() -> None:
    b, effects = run(Breaker(), RateLimited(T0, 7.0))
    assert transitions(effects) == [("active", "unavailable", "rate_limited")]
    assert b.open_until == T0 + 7 and b.resume == "active" and b.opened == 0
    b, effects = run(b, Tick(T0 + 6.999))
    assert effects == [] and b.state == "unavailable"
    b, effects = run(b, Tick(T0 + 7))
    assert transitions(effects) == [("unavailable", "active", "rate_limit_over")]
    assert trials(effects) == [] and b.resume is None and b.open_until is None


def test_a_429_without_retry_after_uses_the_configured_period() -> None:
    b, _ = run(Breaker(), RateLimited(T0, None))
    assert b.open_until == T0 + S.rate_limited_s


def test_an_absurd_retry_after_is_capped_at_the_longest_open_period() -> None:
    b, _ = run(Breaker(), RateLimited(T0, 1e9))
    assert b.open_until == T0 + S.max_open_s
    b, _ = run(Breaker(), RateLimited(T0, S.max_open_s - 1))
    assert b.open_until == T0 + S.max_open_s - 1


def test_a_429_in_cooldown_resumes_cooldown_at_the_same_step() -> None:
    b = in_cooldown()
    b, _ = run(b, *(Succeeded(T0 + 400 + i, 0.1) for i in range(S.ramp_successes)))
    assert b.admit_fraction == 0.25
    b, _ = run(b, RateLimited(T0 + 500, 2))
    assert b.state == "unavailable" and b.resume == "cooldown"
    b, effects = run(b, Tick(T0 + 502))
    assert transitions(effects) == [("unavailable", "cooldown", "rate_limit_over")]
    assert b.admit_fraction == 0.25


def test_a_429_never_shortens_an_open_period_but_may_lengthen_it() -> None:
    b = tripped()
    same, effects = run(b, RateLimited(T0 + 1, 5))
    assert same.open_until == T0 + 300 and effects == [] and same.seq == b.seq
    longer, _ = run(b, RateLimited(T0 + 1, 1000))
    assert longer.open_until == T0 + 1001 and longer.seq == b.seq + 1 and longer.resume is None


def test_tripping_while_rate_limited_opens_the_circuit_without_shortening() -> None:
    b, _ = run(Breaker(), RateLimited(T0, 1000))
    b, effects = run(b, *(Failed(T0 + i, "x") for i in range(3)))
    assert transitions(effects) == [("unavailable", "unavailable", "tripped")]
    assert b.resume is None and b.open_until == T0 + 1000 and b.opened == 1
    b, effects = run(b, Tick(T0 + 1000))
    assert len(trials(effects)) == 1  # a trial, not a silent return


def test_a_failed_probe_while_rate_limited_opens_the_circuit() -> None:
    b, _ = run(Breaker(), RateLimited(T0, 5))
    b, effects = run(b, ProbeFailed(T0 + 1, "down"))
    assert transitions(effects) == [("unavailable", "unavailable", "probe_failed")]
    assert b.resume is None and b.open_until == T0 + 301


# -- degraded ----------------------------------------------------------------------------------
def test_latency_well_above_the_baseline_degrades_and_recovery_returns() -> None:
    b, effects = run(Breaker(), *(Succeeded(T0 + i, 0.2) for i in range(20)))
    assert b.state == "active" and effects == []
    b, effects = run(b, *(Succeeded(T0 + 100 + i, 3.0) for i in range(5)))
    assert transitions(effects) == [("active", "degraded", "slow")]
    assert b.admit_fraction == 1.0 and "baseline" in b.reason
    b, effects = run(b, *(Succeeded(T0 + 200 + i, 0.2) for i in range(10)))
    assert transitions(effects) == [("degraded", "active", "recovered")]


def test_a_slow_probe_degrades_and_a_fast_one_restores() -> None:
    b, effects = run(Breaker(), ProbePassed(T0, S.slow_probe_s))
    assert effects == []
    b, effects = run(b, ProbePassed(T0 + 60, S.slow_probe_s + 0.001))
    assert transitions(effects) == [("active", "degraded", "slow")]
    b, effects = run(b, ProbePassed(T0 + 120, 0.01))
    assert transitions(effects) == [("degraded", "active", "recovered")]


@pytest.mark.parametrize(("latency", "slow"), [
    (Latency(10, 1.0, 3.0), False), (Latency(10, 1.0, 3.0001), True),  # the factor
    (Latency(9, 1.0, 5.0), False),  # too few samples
    (Latency(10, 0.01, 0.5099), False), (Latency(10, 0.01, 0.5101), True),  # the absolute floor
])
def test_the_degraded_rule_on_both_sides(latency: Latency, slow: bool) -> None:
    assert latency.slow(S) is slow


@pytest.mark.parametrize(("latency", "recovered"), [
    (Latency(10, 1.0, 1.4999), True), (Latency(10, 1.0, 1.5), False),
    (Latency(10, 0.01, 0.2599), True), (Latency(9, 1.0, 5.0), True),
])
def test_the_recovery_rule_on_both_sides(latency: Latency, recovered: bool) -> None:
    assert latency.recovered(S) is recovered


def test_the_baseline_learns_slowly_and_the_recent_average_quickly() -> None:
    lat = Latency()
    for _ in range(20):
        lat = lat.add(1.0, S)
    lat = lat.add(4.0, S)
    assert lat.baseline_s == pytest.approx(1 + 3 * 2 / 51)
    assert lat.recent_s == pytest.approx(1 + 3 * 2 / 6)


# -- the table ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("state", "trigger"), [
    ("active", "trial_passed"), ("cooldown", "slow"), ("unavailable", "ramp_done"), ("degraded", "failed"),
    ("active", "rate_limit_over"),
])
def test_a_pair_missing_from_the_table_is_illegal(state: str, trigger: str) -> None:
    assert (state, trigger) not in TRANSITIONS
    with pytest.raises(IllegalTransition):
        next_state(state, trigger)  # type: ignore[arg-type]


def test_resuming_needs_a_state_to_resume() -> None:
    with pytest.raises(IllegalTransition):
        next_state("unavailable", "rate_limit_over")
    assert next_state("unavailable", "rate_limit_over", "degraded") == "degraded"


def test_every_state_can_reach_active_again() -> None:
    graph: dict[str, set[str]] = {}
    for (source, _), target in TRANSITIONS.items():
        graph.setdefault(source, set()).add("active" if target == "resume" else target)
    for start in ("degraded", "unavailable", "cooldown"):
        seen, todo = {start}, [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert "active" in seen, start


# -- the wire -----------------------------------------------------------------------------------
def test_a_new_leader_resumes_from_the_published_state() -> None:
    b = in_cooldown()
    b, _ = run(b, *(Succeeded(T0 + 400 + i, 0.1) for i in range(S.ramp_successes)))
    published = to_state("ollama", b, probe_latency_s=0.01, probed_at=T0)
    assert published.admit_fraction == 0.25 and published.opened == 1 and published.probe_latency_s == 0.01
    resumed = from_state(published, S)
    assert (resumed.state, resumed.admit_fraction, resumed.ramp_index, resumed.seq, resumed.opened) == (
        "cooldown", 0.25, 1, b.seq, 1)


def test_a_new_leader_runs_the_trial_an_old_one_may_have_lost() -> None:
    published = to_state("p", tripped())
    resumed = from_state(published, S)
    assert resumed.trial_deadline is None
    _, effects = run(resumed, Tick(T0 + 300))
    assert len(trials(effects)) == 1
