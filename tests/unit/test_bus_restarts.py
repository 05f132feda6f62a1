"""The embedded bus's restart rules as plain function calls on a fake clock: both sides of every
boundary."""

from __future__ import annotations

import pytest

from cli.up.bus_restarts import (
    Effect,
    Event,
    Exited,
    GiveUp,
    IllegalEvent,
    Kill,
    Lost,
    Policy,
    ProbeMissed,
    ProbePassed,
    Recovered,
    Start,
    Started,
    StartFailed,
    State,
    Tick,
    decide,
)

P = Policy(first_delay_s=0.25, max_delay_s=5.0, give_up_after=5, window_s=60.0, stable_after_s=30.0, hung_after=4)
T0 = 1_000.0


def run(state: State, *timed: tuple[float, Event]) -> tuple[State, list[Effect]]:
    effects: list[Effect] = []
    for now, event in timed:
        state, out = decide(P, state, event, now)
        effects.extend(out)
    return state, effects


def test_an_exit_schedules_a_restart_after_the_first_delay() -> None:
    down, effects = run(State(started_at=T0), (T0 + 100, Exited(-9)))
    assert down.phase == "down" and effects == [Lost("nats-server exited with -9", 0.25)]
    assert run(down, (T0 + 100.24, Tick())) == (down, [])
    starting, effects = run(down, (T0 + 100.25, Tick()))
    assert starting.phase == "starting" and effects == [Start()]
    up, effects = run(starting, (T0 + 100.5, Started()))
    assert up.phase == "up" and up.started_at == T0 + 100.5 and effects == [Recovered(pytest.approx(0.5))]


def test_failed_restarts_back_off_doubling_up_to_the_ceiling() -> None:
    policy = Policy(give_up_after=100)
    state, now, delays = State(started_at=T0), T0 + 100, []
    state, effects = decide(policy, state, Exited(1), now)
    for _ in range(7):
        assert isinstance(effects[-1], Lost)
        delays.append(effects[-1].retry_in_s)
        now = state.restart_at
        state, _ = decide(policy, state, Tick(), now)
        state, effects = decide(policy, state, StartFailed("address already in use"), now)
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_bus_that_stayed_up_long_enough_starts_the_backoff_afresh() -> None:
    state, _ = run(State(started_at=T0), (T0 + 100, Exited(1)), (T0 + 100.25, Tick()), (T0 + 100.25, Started()))
    _, effects = run(state, (T0 + 100.25 + 29.9, Exited(1)))
    assert effects == [Lost("nats-server exited with 1", 0.5)]  # the second in a row
    _, effects = run(state, (T0 + 100.25 + 30, Exited(1)))
    assert effects == [Lost("nats-server exited with 1", 0.25)]


def restart_failing(state: State, times: list[float]) -> tuple[State, list[Effect]]:
    """`Exited` at times[0], then a failed restart at each later time (or when it is due)."""
    state, effects = run(state, (times[0], Exited(1)))
    for at in times[1:]:
        now = max(at, state.restart_at)
        state, out = run(state, (now, Tick()), (now, StartFailed("127.0.0.1:4222 is taken by another process")))
        effects.extend(out)
    return state, effects


def test_five_failures_within_the_window_give_up_with_the_last_reason() -> None:
    state, effects = restart_failing(State(started_at=T0), [T0 + 100, T0 + 101, T0 + 102, T0 + 103, T0 + 104])
    assert state.phase == "gave_up" and state.failures[-1] == T0 + 105  # the fifth waited for its 2 s delay
    assert effects[-1] == GiveUp("127.0.0.1:4222 is taken by another process; 5 failures within 60s")
    with pytest.raises(IllegalEvent):
        decide(P, state, Tick(), T0 + 200)


def test_failures_older_than_the_window_do_not_count() -> None:
    # Four failures, then a long run, then four more: never five inside one minute.
    state, _ = restart_failing(State(started_at=T0), [T0 + 100, T0 + 101, T0 + 102, T0 + 103])
    state, _ = run(state, (T0 + 110, Tick()), (T0 + 110, Started()))
    state, effects = restart_failing(state, [T0 + 160.5, T0 + 161, T0 + 162, T0 + 163])
    assert state.phase == "down" and not any(isinstance(e, GiveUp) for e in effects)
    # ...but the fifth inside the window of the last four does.
    due = state.restart_at
    state, effects = run(state, (due, Tick()), (due, StartFailed("again")))
    assert state.phase == "gave_up" and isinstance(effects[-1], GiveUp)


def test_a_frozen_bus_is_killed_after_missing_probes_in_a_row() -> None:
    up = State(started_at=T0)
    state, effects = run(up, *((T0 + i, ProbeMissed()) for i in range(3)))
    assert state.phase == "up" and state.misses == 3 and effects == []
    state, effects = run(state, (T0 + 3, ProbeMissed()))
    assert state.phase == "down"
    assert effects[0] == Kill() and isinstance(effects[1], Lost) and "liveness" in effects[1].reason


def test_an_answered_probe_clears_the_misses() -> None:
    state, _ = run(State(started_at=T0), (T0, ProbeMissed()), (T0 + 1, ProbeMissed()), (T0 + 2, ProbeMissed()),
                   (T0 + 3, ProbePassed()), (T0 + 4, ProbeMissed()))
    assert state.phase == "up" and state.misses == 1


def test_recovered_reports_the_whole_outage_across_failed_restarts() -> None:
    state, _ = restart_failing(State(started_at=T0), [T0 + 100, T0 + 100.25, T0 + 100.75])
    _, effects = run(state, (state.restart_at, Tick()), (T0 + 102, Started()))
    assert effects[-1] == Recovered(pytest.approx(2.0))


@pytest.mark.parametrize(("phase", "event"), [
    ("up", Started()), ("up", StartFailed("x")), ("down", Exited(1)), ("down", ProbeMissed()),
    ("starting", Tick()), ("starting", Exited(1)), ("gave_up", Started()),
])
def test_an_event_the_phase_cannot_receive_raises(phase: str, event: Event) -> None:
    state = State(phase=phase)  # type: ignore[arg-type]
    with pytest.raises(IllegalEvent):
        decide(P, state, event, T0)
