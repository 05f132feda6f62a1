"""The circuit breaker of one provider: a pure state machine with an injected clock.

`step(breaker, event, settings) -> (breaker, effects)`. No I/O and no clock of its own:
every event carries `at` (epoch seconds, from the shell's clock), so tests move time by hand.
Before each event the breaker first applies what time alone decides (`Tick` does only that).

Rules (DESIGN.md, "Provider states and the circuit breaker"):
- Only upstream failures arrive as `Failed` (5xx, connection errors, timeouts, resets,
  truncated streams, deadlines); the shell drops a client's 4xx and cancels.
- active/degraded: `failure_threshold` failures within `failure_window_s` open the circuit
  (`tripped`), and so does one failed probe cycle (every attempt failed: `probe_failed`).
  cooldown: one failure or failed probe cycle reopens it.
- Open means unavailable until `open_until`. The period is
  `open_s x open_growth^(opened - 1)`, capped at `max_open_s`; `opened` counts the openings
  since the provider was last active, so each reopening lasts longer.
- When the open period ends the shell is told to send exactly one trial inference
  (`StartTrial`); the provider stays unavailable meanwhile. A pass → cooldown at `ramp[0]`.
  A failure, or no answer by `trial_timeout_s` (a hung trial fails at its deadline: the
  breaker never sticks) → unavailable for the next, longer period. The result of an older
  trial is ignored.
- cooldown: routers admit `admit_fraction` of traffic; each `ramp_successes` successes move
  to the next step of `ramp`; after the last step (1.0) → active, and `opened` resets.
- A 429 removes the provider for its Retry-After (`rate_limited_s` without one, `max_open_s`
  at most), not for an open period: unavailable with `resume` = the state it left; once that passes it returns
  to `resume` with no trial. A 429 while unavailable only pushes `open_until` out. Failures
  reaching the threshold, or a failed probe cycle, while rate limited open the circuit.
- A deadline only moves later: no failure, trip or 429 ever shortens `open_until`.
- active ↔ degraded follows the latency rule in `latency.py`, or a passing probe slower than
  `slow_probe_s`.
- `seq` grows with every change the routers must see (a transition or a ramp step).

An event with no row in `TRANSITIONS` for the current state changes at most the breaker's
bookkeeping (failure window, latency averages), never the state. `next_state` raises
`IllegalTransition` for a pair not in the table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from services.health.latency import Latency
from shared.config import HealthCheckSpec
from shared.messages import ProviderState, StateName

Trigger = Literal[
    "slow", "recovered", "tripped", "failed", "probe_failed", "rate_limited", "rate_limit_over",
    "trial_passed", "trial_failed", "ramp_done",
]
RESUME: Literal["resume"] = "resume"  # target meaning "the state the 429 interrupted"

TRANSITIONS: dict[tuple[StateName, Trigger], StateName | Literal["resume"]] = {
    ("active", "slow"): "degraded",
    ("degraded", "recovered"): "active",
    ("active", "tripped"): "unavailable",
    ("degraded", "tripped"): "unavailable",
    ("unavailable", "tripped"): "unavailable",  # only while rate limited: the circuit opens
    ("cooldown", "failed"): "unavailable",
    ("active", "probe_failed"): "unavailable",
    ("degraded", "probe_failed"): "unavailable",
    ("cooldown", "probe_failed"): "unavailable",
    ("unavailable", "probe_failed"): "unavailable",  # only while rate limited
    ("active", "rate_limited"): "unavailable",
    ("degraded", "rate_limited"): "unavailable",
    ("cooldown", "rate_limited"): "unavailable",
    ("unavailable", "rate_limit_over"): RESUME,
    ("unavailable", "trial_passed"): "cooldown",
    ("unavailable", "trial_failed"): "unavailable",
    ("cooldown", "ramp_done"): "active",
}

_DOWN: frozenset[StateName] = frozenset({"unavailable", "degraded"})


class IllegalTransition(Exception):
    pass


# -- events -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Succeeded:
    at: float
    latency_s: float


@dataclass(frozen=True, slots=True)
class Failed:
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class RateLimited:
    at: float
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class ProbePassed:
    at: float
    latency_s: float


@dataclass(frozen=True, slots=True)
class ProbeFailed:
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class TrialPassed:
    at: float
    trial: int


@dataclass(frozen=True, slots=True)
class TrialFailed:
    at: float
    trial: int
    reason: str


@dataclass(frozen=True, slots=True)
class Tick:
    at: float


Event = Succeeded | Failed | RateLimited | ProbePassed | ProbeFailed | TrialPassed | TrialFailed | Tick


# -- effects ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Transitioned:
    source: StateName
    target: StateName
    trigger: Trigger
    reason: str
    at: float

    @property
    def down(self) -> bool:
        return self.target in _DOWN


@dataclass(frozen=True, slots=True)
class RampStepped:
    admit_fraction: float


@dataclass(frozen=True, slots=True)
class StartTrial:
    trial: int
    deadline: float


Effect = Transitioned | RampStepped | StartTrial


# -- the breaker --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Breaker:
    state: StateName = "active"
    previous: StateName | None = None
    reason: str = ""
    since: float = 0.0
    seq: int = 0
    admit_fraction: float = 1.0
    open_until: float | None = None
    opened: int = 0
    resume: StateName | None = None
    ramp_index: int = 0
    ramp_successes: int = 0
    failures: tuple[float, ...] = ()  # times of upstream failures within the window
    trials: int = 0  # trials started so far; the latest one's id
    trial_deadline: float | None = None  # set while a trial runs
    latency: Latency = dataclasses.field(default_factory=Latency)
    slow_probe: bool = False


def next_state(state: StateName, trigger: Trigger, resume: StateName | None = None) -> StateName:
    try:
        target = TRANSITIONS[(state, trigger)]
    except KeyError:
        raise IllegalTransition(f"{trigger!r} is not allowed in state {state!r}") from None
    if target != "resume":
        return target
    if resume is None:
        raise IllegalTransition(f"{trigger!r} needs the state to resume")
    return resume


def open_period(opened: int, settings: HealthCheckSpec) -> float:
    """How long the `opened`-th consecutive opening lasts (opened >= 1)."""
    return min(settings.max_open_s, settings.open_s * settings.open_growth ** max(0, opened - 1))


def _later(deadline: float | None, candidate: float) -> float:
    return candidate if deadline is None else max(deadline, candidate)


def _admit(state: StateName, ramp_index: int, settings: HealthCheckSpec) -> float:
    if state == "unavailable":
        return 0.0
    if state == "cooldown":
        return settings.ramp[min(ramp_index, len(settings.ramp) - 1)]
    return 1.0


def _move(b: Breaker, trigger: Trigger, at: float, reason: str, settings: HealthCheckSpec,
          **changes: object) -> tuple[Breaker, Transitioned]:
    target = next_state(b.state, trigger, b.resume)
    moved = dataclasses.replace(b, **changes)  # type: ignore[arg-type]
    if target == "active":
        moved = dataclasses.replace(moved, opened=0)
    if target != "unavailable":
        moved = dataclasses.replace(moved, resume=None, trial_deadline=None, open_until=None)
    moved = dataclasses.replace(
        moved, state=target, previous=b.state, reason=reason, since=b.since if target == b.state else at,
        seq=b.seq + 1, failures=(), admit_fraction=_admit(target, moved.ramp_index, settings))
    return moved, Transitioned(b.state, target, trigger, reason, at)


def _open(b: Breaker, trigger: Trigger, at: float, reason: str,
          settings: HealthCheckSpec) -> tuple[Breaker, Transitioned]:
    opened = b.opened + 1
    return _move(b, trigger, at, reason, settings, opened=opened, resume=None, trial_deadline=None,
                 open_until=_later(b.open_until, at + open_period(opened, settings)))


def _pruned(failures: tuple[float, ...], at: float, settings: HealthCheckSpec) -> tuple[float, ...]:
    return tuple(t for t in failures if at - t < settings.failure_window_s)


def _tick(b: Breaker, at: float, settings: HealthCheckSpec) -> tuple[Breaker, tuple[Effect, ...]]:
    if b.failures and at - b.failures[0] >= settings.failure_window_s:
        b = dataclasses.replace(b, failures=_pruned(b.failures, at, settings))
    if b.state != "unavailable":
        return b, ()
    if b.resume is not None:
        if b.open_until is None or at >= b.open_until:
            b, moved = _move(b, "rate_limit_over", at, "rate limit period over", settings)
            return b, (moved,)
        return b, ()
    if b.trial_deadline is not None:
        if at >= b.trial_deadline:
            b, moved = _open(b, "trial_failed", at, f"trial inference timed out after {settings.trial_timeout_s:g}s",
                             settings)
            return b, (moved,)
        return b, ()
    if b.open_until is None or at >= b.open_until:
        trial = b.trials + 1
        deadline = at + settings.trial_timeout_s
        return dataclasses.replace(b, trials=trial, trial_deadline=deadline), (StartTrial(trial, deadline),)
    return b, ()


def step(b: Breaker, event: Event, settings: HealthCheckSpec) -> tuple[Breaker, tuple[Effect, ...]]:
    b, timed = _tick(b, event.at, settings)
    b, effects = _on_event(b, event, settings)
    return b, timed + effects


def _on_event(b: Breaker, event: Event, settings: HealthCheckSpec) -> tuple[Breaker, tuple[Effect, ...]]:
    state, at = b.state, event.at
    match event:
        case Tick():
            return b, ()
        case Failed(reason=why):
            if state == "cooldown":
                return _one(_open(b, "failed", at, f"failure in cooldown: {why}", settings))
            if state == "unavailable" and b.resume is None:
                return b, ()  # a straggler from before the circuit opened
            failures = (*_pruned(b.failures, at, settings), at)
            if len(failures) >= settings.failure_threshold:
                return _one(_open(b, "tripped", at, f"{len(failures)} upstream failures within "
                                  f"{settings.failure_window_s:g}s, the last: {why}", settings))
            return dataclasses.replace(b, failures=failures), ()
        case ProbeFailed(reason=why):
            if state == "unavailable" and b.resume is None:
                return b, ()
            return _one(_open(b, "probe_failed", at, why, settings))
        case RateLimited(retry_after_s=retry_after):
            period = settings.rate_limited_s if retry_after is None else min(retry_after, settings.max_open_s)
            until = _later(b.open_until, at + period)
            if state == "unavailable":
                if until == b.open_until:
                    return b, ()
                return dataclasses.replace(b, open_until=until, seq=b.seq + 1), ()
            return _one(_move(b, "rate_limited", at, f"rate limited (429) for {period:g}s", settings,
                              resume=state, open_until=until))
        case Succeeded(latency_s=sample):
            if state == "unavailable":
                return b, ()
            b = dataclasses.replace(b, latency=b.latency.add(sample, settings))
            if state == "cooldown":
                return _ramp(b, at, settings)
            return _judge_speed(b, at, settings, b.latency.describe())
        case ProbePassed(latency_s=took):
            b = dataclasses.replace(b, slow_probe=took > settings.slow_probe_s)
            if state in ("active", "degraded"):
                return _judge_speed(b, at, settings, f"probe took {took:.3g}s")
            return b, ()
        case TrialPassed(trial=n):
            if state != "unavailable" or n != b.trials or b.trial_deadline is None:
                return b, ()
            return _one(_move(b, "trial_passed", at, "trial inference passed", settings, ramp_index=0,
                              ramp_successes=0))
        case TrialFailed(trial=n, reason=why):
            if state != "unavailable" or n != b.trials or b.trial_deadline is None:
                return b, ()
            return _one(_open(b, "trial_failed", at, f"trial inference failed: {why}", settings))
    raise TypeError(f"not a breaker event: {event!r}")  # pragma: no cover


def _one(moved: tuple[Breaker, Effect]) -> tuple[Breaker, tuple[Effect, ...]]:
    return moved[0], (moved[1],)


def _judge_speed(b: Breaker, at: float, settings: HealthCheckSpec, why: str) -> tuple[Breaker, tuple[Effect, ...]]:
    slow = b.latency.slow(settings)
    if b.state == "active" and (slow or b.slow_probe):
        reason = b.latency.describe() if slow else why
        return _one(_move(b, "slow", at, reason, settings))
    if b.state == "degraded" and b.latency.recovered(settings) and not b.slow_probe:
        return _one(_move(b, "recovered", at, f"recovered: {b.latency.describe()}", settings))
    return b, ()


def _ramp(b: Breaker, at: float, settings: HealthCheckSpec) -> tuple[Breaker, tuple[Effect, ...]]:
    successes = b.ramp_successes + 1
    if successes < settings.ramp_successes:
        return dataclasses.replace(b, ramp_successes=successes), ()
    index = b.ramp_index + 1
    if index >= len(settings.ramp):
        return _one(_move(b, "ramp_done", at, f"recovered: {settings.ramp_successes} successes at each step "
                          "of the ramp", settings, ramp_index=0, ramp_successes=0))
    fraction = settings.ramp[index]
    return (dataclasses.replace(b, ramp_index=index, ramp_successes=0, admit_fraction=fraction, seq=b.seq + 1),
            (RampStepped(fraction),))


# -- to and from the wire -----------------------------------------------------------------
def to_state(provider: str, b: Breaker, probe_latency_s: float | None = None,
             probed_at: float | None = None) -> ProviderState:
    return ProviderState(provider=provider, state=b.state, previous=b.previous, reason=b.reason, since=b.since,
                         seq=b.seq, admit_fraction=b.admit_fraction, open_until=b.open_until, opened=b.opened,
                         resume=b.resume, probe_latency_s=probe_latency_s, probed_at=probed_at)


def from_state(state: ProviderState, settings: HealthCheckSpec) -> Breaker:
    """Resume from what a previous leader published. Failure windows and latency averages
    are not published, so they start empty; a trial that was running is started again."""
    ramp_index = 0
    if state.state == "cooldown":
        below = [i for i, f in enumerate(settings.ramp) if f <= state.admit_fraction]
        ramp_index = below[-1] if below else 0
    return Breaker(state=state.state, previous=state.previous, reason=state.reason, since=state.since,
                   seq=state.seq, admit_fraction=_admit(state.state, ramp_index, settings),
                   open_until=state.open_until, opened=state.opened,
                   resume=state.resume if state.state == "unavailable" else None, ramp_index=ramp_index)
